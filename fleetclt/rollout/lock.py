"""One process drives a rollout at a time: an exclusive lock per run, next to its journal.

Two processes driving one run would each submit the jobs still to start (a
second `--resume`, or a resume while the first run goes on). The lock is an
`flock` on `<run id>.lock`: the kernel drops it when its process ends,
however it ends (kill -9 included), so a lock is never left behind by a dead
process on this machine. The file also names its holder: pid, boot id and
the process's start time. A lock file found unlocked whose holder is still
alive on this boot (a file system whose locks do not reach this machine)
refuses as well; one left by a dead process or an earlier boot is stale and
is taken over.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import gevent

from ..errors import ConfigError

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
HOLDER_WAIT = 1.0   # seconds a refused process waits for the holder to write its name


class RolloutRunning(ConfigError):
    """Another live process drives this rollout."""

    def __init__(self, run_id: str, pid: int | None) -> None:
        self.run_id, self.pid = run_id, pid
        super().__init__(f"rollout {run_id} is running (pid {pid if pid is not None else 'unknown'})")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: enough to tell a live process from a dead one whose pid was reused."""

    pid: int
    boot_id: str
    started: str   # the process's start time in clock ticks since boot (/proc/PID/stat field 22)

    @classmethod
    def me(cls) -> Holder:
        return cls(os.getpid(), boot_id(), process_start_time(os.getpid()))

    def alive_here(self) -> bool:
        """Whether this very process still runs on this machine since this boot."""
        return self.boot_id == boot_id() and self.started != "" and process_start_time(self.pid) == self.started


def boot_id() -> str:
    try:
        return BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> str:
    """The start time of process `pid`, "" if there is none (the command may hold spaces: split after it).

    A zombie has none: it has ended (its locks with it), only its parent has not read its status yet,
    which for an orphaned agent killed with SIGKILL may take a while.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


class RunLock:
    """Held from `acquire` until `release` or the end of the process."""

    def __init__(self, fd: int, path: Path) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: Path, run_id: str) -> RunLock:
        """Lock `path` (created if missing) for this process, or raise RolloutRunning naming the holder."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder_of(fd)
                raise RolloutRunning(run_id, holder.pid if holder else None) from None
            holder = _read(fd)
            if holder is not None and holder.pid != os.getpid() and holder.alive_here():
                raise RolloutRunning(run_id, holder.pid)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(Holder.me())).encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(fd, path)

    def release(self) -> None:
        """Empty the file (a pid left in it could be reused) and unlock; a second call does nothing."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the lock goes with the descriptor all the same
        finally:
            os.close(fd)

    def __del__(self) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """Whether a live process holds the lock at `path` (for pruning: never remove a running rollout)."""
    return live_holder(path) is not None


def live_holder(path: Path) -> Holder | None:
    """The live process that holds the lock at `path` (the one driving the run), or None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        holder = _read(fd)
        return holder if holder is not None and holder.alive_here() else None
    except BlockingIOError:
        return _holder_of(fd) or Holder(0, "", "")
    finally:
        os.close(fd)


def _holder_of(fd: int) -> Holder | None:
    """The live holder of a lock we could not take. It writes its name just after locking: a
    process that lost the race by a hair finds the file empty or stale, and reads again."""
    deadline = time.monotonic() + HOLDER_WAIT
    while True:
        holder = _read(fd)
        if (holder is not None and holder.alive_here()) or time.monotonic() > deadline:
            return holder
        gevent.sleep(0.005)


def _read(fd: int) -> Holder | None:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"null")
        return Holder(int(data["pid"]), str(data["boot_id"]), str(data["started"])) if data else None
    except (OSError, ValueError, KeyError, TypeError):
        return None
