"""Configuration backups of every host: dated files, a manifest, retention.

`backup(fleet, dest)` asks each host for `config.save` with
`root_authorized_keys` (and `secretseed` on request), options every version
from 24.10 to 26.0 takes (docs/protocol.md §16), so the file is always a tar.
Each lands as `dest/<host>/<host>-<UTC time>.tar`, written as files.py writes
any download (0600, in 0700 directories, renamed only once complete), and
`dest/manifest.json` lists every backup kept: host, version, time, file, size
and sha256.

An unchanged configuration is stored as a hard link to the previous backup of
that host, not skipped: every run leaves a file named by its time (so "is
there a backup from last night" is answered by a listing, and retention counts
runs), and an unchanged one costs no space. Whether it changed is only known
once it is downloaded (the server gives no hash), so the transfer happens
either way. Files are never written after they are published, so sharing an
inode is safe. `keep` removes a host's oldest backups beyond the newest N,
only for hosts that got a new one in this run. One run at a time per
directory: a lock file refuses a second.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from ..client.session import HostSession
from ..errors import ConfigError
from ..protocol.files import ManifestEntry, backup_name, expired, latest, merge_manifest, read_manifest
from .files import PartFile, fetch, local_errors
from .results import FleetResult, ResultCallback

if TYPE_CHECKING:
    from .fleet import Fleet  # the functions are also Fleet's methods (fleet.py)

MANIFEST, LOCK = "manifest.json", ".fleetclt-backup.lock"


def backup(fleet: Fleet, dest: str | os.PathLike[str], *, hosts: str | Iterable[str] = "all",
           secretseed: bool = False, keep: int | None = None, deadline: float | None = None,
           on_result: ResultCallback | None = None) -> FleetResult:
    """Back up every selected host's configuration into `dest`; see the module docstring.

    Each ok host's result is `{"path", "size", "sha256", "version", "unchanged"}`.
    `secretseed` includes the password secret seed: whoever has the file can then
    decrypt the stored passwords, so keep such backups as secret as the hosts.
    """
    if keep is not None and keep < 1:
        raise ConfigError(f"keep must be 1 or more, not {keep}")
    root = Path(dest)
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the backup directory {root}: {exc.strerror or exc}") from None
    with _locked(root):
        old = _load_manifest(root / MANIFEST)
        new: list[ManifestEntry] = []
        options = {"secretseed": secretseed, "root_authorized_keys": True}

        def action(session: HostSession) -> dict[str, Any]:
            entry, unchanged = _backup_one(session, root, options, latest(old, session.name))
            new.append(entry)
            return {"path": str(root / entry.file), "size": entry.size, "sha256": entry.sha256,
                    "version": entry.version, "unchanged": unchanged}
        result: FleetResult = fleet.run(action, hosts=hosts, deadline=deadline, on_result=on_result)
        if keep is not None:
            for entry in new:
                _retain(root / entry.host, entry.host, keep)
        _write_manifest(root, merge_manifest(old, new, _kept_files(root, [*old, *new])))
    return result


def _backup_one(session: HostSession, root: Path, options: dict[str, bool],
                previous: ManifestEntry | None) -> tuple[ManifestEntry, bool]:
    version = str(session.call("system.version_short"))
    when = dt.datetime.now(dt.timezone.utc)
    name = backup_name(session.name, when)
    with local_errors(session.name):
        part, _ = fetch(session, "config.save", [options],
                        lambda job_id: root / session.name / name, filename=name)
        twin = root / previous.file if previous is not None else None
        unchanged = (previous is not None and twin is not None and previous.sha256 == part.sha256
                     and previous.size == part.size and twin.is_file() and twin.stat().st_size == part.size)
        part.publish(as_link_of=twin if unchanged else None)
    time = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return ManifestEntry(session.name, version, time, f"{session.name}/{name}", part.size, part.sha256), unchanged


def _retain(folder: Path, host: str, keep: int) -> None:
    for name in expired(host, os.listdir(folder), keep):
        (folder / name).unlink(missing_ok=True)


def _kept_files(root: Path, entries: list[ManifestEntry]) -> list[str]:
    return [entry.file for entry in entries if (root / entry.file).is_file()]


def _load_manifest(path: Path) -> list[ManifestEntry]:
    """The manifest's entries; a broken one stops the run before any host is asked."""
    try:
        return read_manifest(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return []
    except (OSError, orjson.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}; move it away to start a new manifest") from None


def _write_manifest(root: Path, document: dict[str, Any]) -> None:
    part = PartFile(root / MANIFEST)
    try:
        part.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
        part.seal("")
        part.publish()
    except BaseException:
        part.discard()
        raise


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """One backup run per directory: two would each rewrite the manifest without the other's entries."""
    fd = os.open(root / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another fleetclt backup is writing to {root}") from None
        yield
    finally:
        os.close(fd)
