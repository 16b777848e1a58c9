"""Files across the fleet, the pure part: download answers, names on disk, the backup manifest.

`core.download` answers `[job_id, "/_download/<job_id>?auth_token=..."]`
(docs/protocol.md §16). The token in that URL lets anyone fetch the file, so it
is masked wherever text may reach a log or a message (redact.mask_tokens). Names on
disk come from a template the user may set, so they are checked to stay inside
the destination directory. Backups are named by host and time (UTC, to the
millisecond) so that names sort by time; the manifest lists every backup kept.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .redact import mask_tokens

DOWNLOAD_PREFIX = "/_download/"
DEFAULT_TEMPLATE = "{host}/{filename}"
TEMPLATE_FIELDS = ("host", "filename", "job_id", "method", "time")
PART_SUFFIX = ".part"                      # a file being written; never a finished one
_TIME_FORMAT = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class DownloadTicket:
    """What core.download answered: the job writing the file, and the path that streams it."""

    job_id: int
    path: str  # with its auth_token: never logged or shown (mask_tokens)

    def __repr__(self) -> str:
        return f"DownloadTicket(job_id={self.job_id}, path={mask_tokens(self.path)!r})"


def parse_download_answer(answer: Any) -> DownloadTicket:
    """core.download's `[job_id, url]`; ValueError (without the token) for anything else."""
    if (isinstance(answer, (list, tuple)) and len(answer) == 2 and isinstance(answer[0], int)
            and not isinstance(answer[0], bool) and isinstance(answer[1], str)
            and answer[1].startswith(f"{DOWNLOAD_PREFIX}{answer[0]}?")):
        return DownloadTicket(answer[0], answer[1])
    shown = mask_tokens(repr(answer))
    raise ValueError(f"core.download answered {shown:.80}, not [job id, {DOWNLOAD_PREFIX}<job id>?auth_token=...]")


def default_filename(method: str, args: Sequence[Any]) -> str:
    """The name asked of core.download when the user gives none.

    config.save sends the bare database unless an option is set, then a tar
    (docs/protocol.md §16); system.debug sends a compressed tar.
    """
    if method == "config.save":
        options = args[0] if args and isinstance(args[0], dict) else {}
        return "config.tar" if any(options.values()) else "freenas-v1.db"
    if method == "system.debug":
        return "debug.tgz"
    return f"{method}.bin"


def safe_name(name: str) -> str:
    """One path component from a server or a user: no separators, no leading dot, never empty."""
    cleaned = re.sub(r"[/\\\x00-\x1f]", "_", name).lstrip(".").strip()
    return cleaned or "download"


def render_path(template: str, fields: Mapping[str, Any]) -> str:
    """The relative path a template gives; ValueError if it names an unknown field or leaves the directory."""
    try:
        text = template.format_map(dict(fields))
    except KeyError as exc:
        raise ValueError(f"the name template {template!r} has an unknown field {{{exc.args[0]}}}; "
                         f"known: {', '.join('{' + f + '}' for f in TEMPLATE_FIELDS)}") from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"the name template {template!r} cannot be used: {exc}") from None
    parts = text.split("/")
    if text.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"the name template {template!r} gives {text!r}, which is not a plain relative path")
    return text


def check_template(template: str) -> str:
    """Fail early (a usage error) on a template that no host could use."""
    render_path(template, {"host": "h", "filename": "f", "job_id": 1, "method": "m", "time": "t"})
    return template


def stamp(when: dt.datetime) -> str:
    """A UTC time as backup names carry it: 20250612T221500.123Z (sorts as it reads)."""
    when = when.astimezone(dt.timezone.utc)
    return f"{when.strftime(_TIME_FORMAT)}.{when.microsecond // 1000:03d}Z"


def backup_name(host: str, when: dt.datetime) -> str:
    return f"{host}-{stamp(when)}.tar"


def _backup_pattern(host: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(host)}-\d{{8}}T\d{{6}}\.\d{{3}}Z\.tar")


def backups_of(host: str, names: Iterable[str]) -> list[str]:
    """The backup files of `host` among `names`, oldest first."""
    pattern = _backup_pattern(host)
    return sorted(name for name in names if pattern.fullmatch(name))


def expired(host: str, names: Iterable[str], keep: int) -> list[str]:
    """The backups of `host` beyond the newest `keep`: the ones retention removes."""
    mine = backups_of(host, names)
    return mine[:max(0, len(mine) - keep)]


@dataclass(frozen=True)
class ManifestEntry:
    """One kept backup; `file` is relative to the backup directory."""

    host: str
    version: str
    time: str
    file: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "version": self.version, "time": self.time, "file": self.file,
                "size": self.size, "sha256": self.sha256}


def read_manifest(document: Any) -> list[ManifestEntry]:
    """The entries of a parsed manifest.json; ValueError names what is wrong."""
    rows = document.get("backups") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        raise ValueError('not a fleetclt backup manifest (no "backups" list)')
    entries = []
    for index, row in enumerate(rows):
        try:
            entries.append(ManifestEntry(str(row["host"]), str(row["version"]), str(row["time"]),
                                         str(row["file"]), int(row["size"]), str(row["sha256"])))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"backup entry {index} lacks host, version, time, file, size or sha256") from None
    return entries


def merge_manifest(old: Iterable[ManifestEntry], new: Iterable[ManifestEntry],
                   kept: Iterable[str]) -> dict[str, Any]:
    """The manifest document after a run: the entries whose files are still kept, one per file."""
    keep = set(kept)
    by_file = {entry.file: entry for entry in [*old, *new] if entry.file in keep}
    rows = sorted(by_file.values(), key=lambda entry: (entry.host, entry.time, entry.file))
    return {"backups": [entry.to_dict() for entry in rows]}


def latest(entries: Iterable[ManifestEntry], host: str) -> ManifestEntry | None:
    """The newest entry of `host`, or None."""
    mine = [entry for entry in entries if entry.host == host]
    return max(mine, key=lambda entry: (entry.time, entry.file)) if mine else None
