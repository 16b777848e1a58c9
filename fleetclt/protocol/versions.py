"""TrueNAS versions, and the method names that changed between them (docs/protocol.md §14).

A caller writes one method name for a whole mixed fleet; `method_for` gives the
name a host of a given version has for it. Only renames whose arguments carry
over unchanged are translated: the table says which, and docs/protocol.md §14
says what is deliberately left alone.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Version = tuple[int, ...]

_NUMBERS = re.compile(r"(\d+(?:\.\d+)+)")


def parse_version(text: str) -> Version | None:
    """'25.10.1', 'TrueNAS-25.10.1', 'TrueNAS-SCALE-24.10.2', 'v25.04.2', '26.0.0-BETA.2' -> numbers.

    The first dotted run of numbers counts: a pre-release suffix is ignored, and
    24.10's long form (`TrueNAS-SCALE-24.10.2`) reads like the short one. None if
    there is no version in `text`.
    """
    found = _NUMBERS.search(text)
    return tuple(int(part) for part in found.group(1).split(".")) if found else None


def _update_config(params: list[Any]) -> bool:
    """A call meant for the 25.10+ `update.update` (configuration) names one of its fields.

    The update job's options (dataset_name, resume, train, reboot) and the
    configuration's fields (autocheck, profile) do not overlap, so the first
    argument says which method the caller means; `{}` or nothing means the job,
    the only meaning the name had before 25.10.
    """
    return bool(params) and isinstance(params[0], dict) and not params[0].keys().isdisjoint({"autocheck", "profile"})


@dataclass(frozen=True)
class Rename:
    """`old` is called `new` from version `since` on, with the same arguments.

    `old_means_other(params)` is true when, from `since` on, a call to `old` with
    these arguments is for another method that took over the name there: it is
    sent unchanged.
    """

    old: str
    new: str
    since: Version
    old_means_other: Callable[[list[Any]], bool] | None = None


RENAMES = (
    # 25.10 moved the update job to update.run (plugins/update_/update.py) and made
    # update.update the ConfigService update of {autocheck, profile} (plugins/update_/config.py).
    Rename("update.update", "update.run", (25, 10), _update_config),
)
_BY_NAME = {name: rename for rename in RENAMES for name in (rename.old, rename.new)}


def is_renamed(method: str) -> bool:
    """True when the name a host wants for `method` depends on its version."""
    return method in _BY_NAME


def method_for(method: str, params: list[Any], version: Version) -> str:
    """The name a host of `version` has for what the caller calls `method`."""
    rename = _BY_NAME.get(method)
    if rename is None:
        return method
    if version < rename.since:
        return rename.old
    if method == rename.old and rename.old_means_other is not None and rename.old_means_other(params):
        return method
    return rename.new


# nginx in front of hosts before 26.0-BETA.2 closes a websocket that carried nothing for 60 s
# (docs/protocol.md §10); from 26.0-BETA.2 it waits an hour.
NGINX_IDLE = 60.0
_FULL_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?[.\d]*(?:-(BETA|RC)\.(\d+))?")


def nginx_closes_idle(version: str) -> bool:
    """True when the host's nginx closes a websocket idle for 60 s: every version before 26.0-BETA.2.

    Takes "25.10.1", "26.0.0-BETA.1" or "TrueNAS-SCALE-24.10.2"; an unreadable version counts as old.
    """
    match = _FULL_VERSION.search(version)
    if match is None:
        return True
    major, minor, patch = int(match[1]), int(match[2]), int(match[3] or 0)
    if (major, minor, patch) != (26, 0, 0):
        return (major, minor) < (26, 0)
    return match[4] == "BETA" and int(match[5]) < 2
