"""Where fleetclt keeps state between runs, and how it writes it safely.

The state dir holds the shared auth budgets (client/throttle.py), the outcome of
the last fan-out per inventory (for `--hosts @failed`), rollout journals and
each inventory's agent socket (docs/agent.md).
It is `$FLEETCLT_STATE_DIR`, else `$XDG_STATE_HOME/fleetclt`, else
`~/.local/state/fleetclt`; made 0700, files 0600, written atomically so a
killed process never leaves half a file. A state dir that cannot be used (a
file, read-only) is warned about once per process, whoever meets it first.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_warned: set[Path] = set()  # unusable state dirs already warned about in this process


def state_dir() -> Path:
    """$FLEETCLT_STATE_DIR, else $XDG_STATE_HOME/fleetclt, else ~/.local/state/fleetclt."""
    if os.environ.get("FLEETCLT_STATE_DIR"):
        return Path(os.environ["FLEETCLT_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "fleetclt"


def ensure_dir(path: Path) -> Path:
    """Create `path` 0700 if missing; never change the mode of a directory that exists."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
    return path


def warn_unusable(place: Path, error: OSError) -> None:
    """One warning per process for an unusable state dir: 150 sessions meeting it say it once."""
    if place in _warned:
        return
    _warned.add(place)
    log.warning("state dir %s is unusable (%s): login budgets are kept in this process only, "
                "and this run's outcome is not remembered for @failed", place, error.strerror or error)


def _unusable_dir(error: OSError) -> bool:
    """The error says the state dir itself is the problem (a file, no permission), not one file in it."""
    return isinstance(error, (NotADirectoryError, PermissionError, FileExistsError))


def write_private(path: Path, text: str, sync: bool = False) -> None:
    """Replace `path` atomically with `text`, mode 0600; `sync` also fsyncs file and folder."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)
    if sync:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _inventory_key(inventory_path: str) -> str:
    """A short name for an inventory, by its absolute path: one last run and one agent per inventory."""
    return hashlib.sha256(os.path.abspath(inventory_path).encode()).hexdigest()[:12]


def _last_run_path(inventory_path: str) -> Path:
    return state_dir() / f"last-run-{_inventory_key(inventory_path)}.json"


@dataclass(frozen=True)
class AgentFiles:
    """The agent of one inventory: its socket, the lock it holds while alive, its log (docs/agent.md)."""

    socket: Path
    lock: Path
    log: Path


def agent_files(inventory_path: str) -> AgentFiles:
    base = state_dir() / f"agent-{_inventory_key(inventory_path)}"
    return AgentFiles(base.with_suffix(".sock"), base.with_suffix(".lock"), base.with_suffix(".log"))


def save_last_run(inventory_path: str, method: str, failed: Iterable[str], ok: Iterable[str]) -> None:
    """Remember which hosts did not succeed, for `--hosts @failed` next time."""
    record = {"inventory": os.path.abspath(inventory_path), "method": method, "time": time.time(),
              "failed": sorted(failed), "ok": sorted(ok)}
    try:
        write_private(ensure_dir(state_dir()) / _last_run_path(inventory_path).name, json.dumps(record))
    except OSError as exc:
        if _unusable_dir(exc):
            warn_unusable(state_dir(), exc)
        else:
            log.warning("cannot record this run's outcome (%s); @failed will not know it", exc)


def last_failed(inventory_path: str) -> frozenset[str]:
    """Hosts that did not succeed in the previous run against this inventory (empty if none)."""
    try:
        record: Any = json.loads(_last_run_path(inventory_path).read_text(encoding="utf-8"))
        return frozenset(str(name) for name in record["failed"])
    except FileNotFoundError:
        return frozenset()
    except OSError as exc:
        if not _unusable_dir(exc):
            log.warning("cannot read the last run's outcome (%s); @failed matches nothing", exc)
        return frozenset()  # an unusable dir is warned about where it is written
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("cannot read the last run's outcome (%s); @failed matches nothing", exc)
        return frozenset()
