"""The rollout journal: every step of a rollout, fsynced, so a killed process loses nothing.

One JSON object per line under `<state dir>/rollouts/<run id>.jsonl`: a header
with the plan (its job arguments redacted, with a digest of them in clear), the
inventory's absolute path and a digest of the run's hosts, then records as they
happen (a host is submitting under boot B, running with job id N of boot B,
done; a stage started; the rollout halted, was resumed with new options, or
stopped). Replaying the lines gives the last known state of every host, which
is what `fleetclt rollout --resume RUN_ID` starts from. A journal is open in
one process at a time (lock.py). Journals untouched for `$FLEETCLT_JOURNAL_DAYS`
days (30 by default) are removed when a new rollout starts.

A write that fails (a full disk, a read-only or failing filesystem) raises
JournalWriteError, and the journal writes nothing more: a line the OS took only
part of stays the last one, and the next process to open the run ends it first.
"""
from __future__ import annotations

import hashlib
import math
import os
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FleetError
from ..local.state import ensure_dir, state_dir
from ..protocol import ejson
from ..protocol.redact import redact
from .lock import RunLock, is_locked
from .observer import HostState

KEEP_DAYS_VAR = "FLEETCLT_JOURNAL_DAYS"
DEFAULT_KEEP_DAYS = 30.0


def journal_dir() -> Path:
    return state_dir() / "rollouts"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def digest(value: Any) -> str:
    """A digest of JSON-able data, the same for equal data whatever its key order."""
    return hashlib.sha256(ejson.dumps(_sorted(value)).encode()).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _sorted(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [_sorted(item) for item in value]
    return value


def keep_days() -> float:
    """How long journals are kept: $FLEETCLT_JOURNAL_DAYS, else 30 days."""
    text = os.environ.get(KEEP_DAYS_VAR, "").strip()
    if not text:
        return DEFAULT_KEEP_DAYS
    try:
        days = float(text)
    except ValueError:
        days = math.nan
    if not (math.isfinite(days) and days > 0):
        raise ConfigError(f"${KEEP_DAYS_VAR}: {text!r} is not a number of days above 0")
    return days


@contextmanager
def _state_errors() -> Iterator[None]:
    """An unusable state dir (a file, read-only, full) is one line for the user, not a traceback."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot keep rollout journals in {journal_dir()}: {exc.strerror or exc} "
                          f"(set $FLEETCLT_STATE_DIR to a writable directory)") from None


class JournalWriteError(FleetError):
    """A journal line could not be written: the run cannot record what it does, so it must not act."""


@dataclass
class HostRecord:
    """The last known state of one host in a rollout.

    `job_id` means something only with `boot_id`, the boot of the host's
    middleware that issued it. `host_time` is the host's own clock (epoch
    seconds) read just before the job was submitted: a resume that must find
    the job compares the jobs' start times with it, never with our clock.
    """

    host: str
    stage: int
    state: HostState = HostState.WAITING
    job_id: int | None = None
    result: Any = None
    error: dict[str, Any] | None = None
    started: float | None = None
    finished: float | None = None
    boot_id: str | None = None
    host_time: float | None = None

    def __post_init__(self) -> None:
        self.state = HostState(self.state)  # a journal line holds the plain string


@dataclass
class Replay:
    """What a journal says: the header, each host's record, and notes such as `halted`."""

    header: dict[str, Any]
    hosts: dict[str, HostRecord] = field(default_factory=dict)
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def plan(self) -> dict[str, Any]:
        """The plan in force: the header's, or the one the last resume that changed options wrote."""
        plans = [note["plan"] for note in self.notes if note.get("event") == "resumed" and "plan" in note]
        return plans[-1] if plans else dict(self.header["plan"])

    @property
    def stop_reason(self) -> str | None:
        """Why its last run stopped; None while it runs, or when the process driving it died first."""
        reason = None
        for note in self.notes:
            if note.get("event") == "resumed":
                reason = None
            elif note.get("event") == "stopped":
                reason = str(note.get("reason"))
        return reason

    @property
    def stop_asked(self) -> bool:
        """`fleetclt rollout stop` was asked since the run last (re)started."""
        asked = False
        for note in self.notes:
            asked = note.get("event") == "stop_asked" or (asked and note.get("event") != "resumed")
        return asked


class Journal:
    """Append-only, fsynced after every record; holds the run's lock while open."""

    def __init__(self, path: Path, lock: RunLock) -> None:
        self.path, self.lock = path, lock
        self.run_id = path.stem
        self.failed: str | None = None  # why a write failed: nothing is written after it

    @classmethod
    def create(cls, header: dict[str, Any]) -> Journal:
        """A new run's journal; a header that cannot be written leaves neither journal nor lock behind."""
        run_id = header.setdefault("run_id", new_run_id())
        path = writable_dir() / f"{run_id}.jsonl"
        with _state_errors():
            journal = cls(path, RunLock.acquire(lock_path(run_id), run_id))
        try:
            journal._append({"kind": "header", **header})
        except JournalWriteError as exc:
            with suppress(OSError):  # both while locked: a run id nobody else can have taken meanwhile
                path.unlink()
                lock_path(run_id).unlink()
            journal.close()
            raise ConfigError(f"{exc}; the rollout did not start, no job was submitted") from None
        return journal

    @classmethod
    def open(cls, run_id: str) -> tuple[Journal, Replay]:
        """Lock the run, then read it: what a process that held it wrote is all there."""
        path = _existing(run_id)
        with _state_errors():
            journal = cls(path, RunLock.acquire(lock_path(run_id), run_id))
        try:
            with _state_errors():
                journal._end_last_line()
                return journal, journal.replay()
        except BaseException:
            journal.close()
            raise

    def close(self) -> None:
        """Let another process drive this run."""
        self.lock.release()

    def host(self, record: HostRecord) -> None:
        """Write the current state of one host."""
        self._append({"kind": "host", **record.__dict__})

    def note(self, event: str, **fields: Any) -> None:
        self._append({"kind": "note", "event": event, "time": time.time(), **fields})

    def replay(self) -> Replay:
        return _replay(self.path)

    def _append(self, record: dict[str, Any]) -> None:
        self._write((ejson.dumps(record) + "\n").encode())

    def _end_last_line(self) -> None:
        """A line a failed write left unfinished is ended, so the next record starts a line of its own."""
        with self.path.open("rb") as file:
            if file.seek(0, os.SEEK_END) == 0:
                return
            file.seek(-1, os.SEEK_END)
            if file.read(1) == b"\n":
                return
        self._write(b"\n")

    def _write(self, data: bytes) -> None:
        """All of `data`, fsynced; an OSError (ENOSPC, EROFS, EIO, EFBIG) fails this and every later write."""
        if self.failed is not None:
            raise JournalWriteError(self.failed)
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                while data:  # a nearly full disk or a file size limit takes part of it, then fails
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            self.failed = f"cannot write the rollout journal {self.path}: {exc.strerror or exc}"
            raise JournalWriteError(self.failed) from None


def peek(run_id: str) -> Replay:
    """A rollout's journal read without taking its lock: a run in progress may add lines meanwhile.

    For what only looks (`rollout list`, `attach`, the inventory a resume reads); a driver uses open().
    """
    path = _existing(run_id)
    with _state_errors():
        return _replay(path)


def _existing(run_id: str) -> Path:
    path = journal_dir() / f"{run_id}.jsonl"
    if not path.is_file() or os.sep in run_id:
        raise ConfigError(f"no rollout journal {path} (run ids are listed in {journal_dir()})")
    return path


def _replay(path: Path) -> Replay:
    records = _records(path.read_text(encoding="utf-8"))
    if not records or records[0].get("kind") != "header":
        raise ConfigError(f"{path} is not a rollout journal")
    replay = Replay(records[0])
    for record in records[1:]:
        kind = record.pop("kind")
        if kind == "host":
            replay.hosts[record["host"]] = _host_record(path, record)
        else:
            replay.notes.append(record)
    return replay


def _host_record(path: Path, fields: dict[str, Any]) -> HostRecord:
    fields.pop("submitted_at", None)  # our clock at submission, written before the host's was
    try:
        return HostRecord(**fields)
    except ValueError:
        raise ConfigError(f"{path}: unknown host state {fields.get('state')!r} "
                          f"(written by a newer fleetclt?)") from None


def writable_dir() -> Path:
    """The journals' folder, made if missing: a rollout checks it before it reads or connects anything."""
    with _state_errors():
        folder = ensure_dir(journal_dir())
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
    return folder


def lock_path(run_id: str) -> Path:
    return journal_dir() / f"{run_id}.lock"


def stored_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """A plan as a journal keeps it: the job's arguments redacted, plus a digest of them in clear
    that a resume given the arguments again checks them against."""
    return {**plan, "params": redact(list(plan["params"])), "params_digest": digest(plan["params"])}


def hosts_digest(hosts: Iterable[tuple[str, str]]) -> str:
    """A digest of (name, uri) pairs: tells a resume whether the inventory changed under the run."""
    return digest([list(pair) for pair in hosts])


def prune(max_age_days: float, now: float | None = None) -> list[str]:
    """Remove journals (and their lock files) untouched for longer than `max_age_days`; their run ids.

    A running rollout's journal is kept whatever its age. Nothing here is worth
    failing a rollout for: a file that cannot be removed is left.
    """
    folder = journal_dir()
    cutoff = (time.time() if now is None else now) - max_age_days * 86400
    removed: list[str] = []
    try:
        journals = list(folder.glob("*.jsonl"))
    except OSError:
        return removed
    for path in journals:
        lock = folder / f"{path.stem}.lock"
        try:
            if path.stat().st_mtime >= cutoff or is_locked(lock):
                continue
            path.unlink()
            lock.unlink(missing_ok=True)
        except OSError:
            continue
        removed.append(path.stem)
    return removed


def _records(text: str) -> list[dict[str, Any]]:
    """Parsed lines; a process killed mid-write may leave a last line that is not JSON."""
    records = []
    for line in text.splitlines():
        try:
            records.append(ejson.loads(line))
        except ejson.DecodeError:
            continue
    return records
