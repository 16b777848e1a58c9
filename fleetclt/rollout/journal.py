"""The rollout journal: every step of a rollout, fsynced, so a killed process loses nothing.

One JSON object per line under `<state dir>/rollouts/<run id>.jsonl`: a header
with the plan and the inventory, then records as they happen (a host is
submitting under boot B, running with job id N of boot B, done; a stage
started; the rollout halted or finished). Replaying the lines gives the last
known state of every host, which is what `fleetclt rollout --resume RUN_ID`
starts from.
"""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..local.state import ensure_dir, state_dir
from ..protocol import ejson
from .observer import HostState


def journal_dir() -> Path:
    return state_dir() / "rollouts"


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


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


class Journal:
    """Append-only, fsynced after every record."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.run_id = path.stem

    @classmethod
    def create(cls, header: dict[str, Any]) -> Journal:
        run_id = header.setdefault("run_id", new_run_id())
        journal = cls(ensure_dir(journal_dir()) / f"{run_id}.jsonl")
        journal._append({"kind": "header", **header})
        return journal

    @classmethod
    def open(cls, run_id: str) -> tuple[Journal, Replay]:
        path = journal_dir() / f"{run_id}.jsonl"
        if not path.is_file():
            raise ConfigError(f"no rollout journal {path} (run ids are listed in {journal_dir()})")
        journal = cls(path)
        return journal, journal.replay()

    def host(self, record: HostRecord) -> None:
        """Write the current state of one host."""
        self._append({"kind": "host", **record.__dict__})

    def note(self, event: str, **fields: Any) -> None:
        self._append({"kind": "note", "event": event, "time": time.time(), **fields})

    def replay(self) -> Replay:
        records = _records(self.path.read_text(encoding="utf-8"))
        if not records or records[0].get("kind") != "header":
            raise ConfigError(f"{self.path} is not a rollout journal")
        replay = Replay(records[0])
        for record in records[1:]:
            kind = record.pop("kind")
            if kind == "host":
                replay.hosts[record["host"]] = self._host_record(record)
            else:
                replay.notes.append(record)
        return replay

    def _host_record(self, fields: dict[str, Any]) -> HostRecord:
        fields.pop("submitted_at", None)  # our clock at submission, written before the host's was
        try:
            return HostRecord(**fields)
        except ValueError:
            raise ConfigError(f"{self.path}: unknown host state {fields.get('state')!r} "
                              f"(written by a newer fleetclt?)") from None

    def _append(self, record: dict[str, Any]) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, (ejson.dumps(record) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)


def _records(text: str) -> list[dict[str, Any]]:
    """Parsed lines; a process killed mid-write may leave a last line that is not JSON."""
    records = []
    for line in text.splitlines():
        try:
            records.append(ejson.loads(line))
        except ejson.DecodeError:
            continue
    return records
