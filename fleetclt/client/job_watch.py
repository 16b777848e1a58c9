"""The jobs a session is waiting for: merged state, a wake-up per job, and what the server forgot.

Jobs are followed through `core.get_jobs` events (never polled). A job is looked
up by id only when its events may have been missed: when the wait starts, after
a reconnect (re-attach), and once after `idle` seconds of silence (a transient
job sends no events). A job the server no longer knows raises JobUnknown; a
job that stays silent and unchanged raises CallTimeout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gevent.event import Event

from ..errors import CallTimeout, JobUnknown
from ..protocol.jobs import JOB_EVENT, Job, JobTracker, is_terminal
from ..protocol.jsonrpc import CollectionUpdate

Call = Callable[[str, list[Any]], Any]          # a live link's call(method, params)
ProgressCallback = Callable[[Job], None]


class JobWatch:
    """Per-session job bookkeeping; the session feeds it events and lends it a way to call."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._tracker = JobTracker(host)
        self._wakeups: dict[int, Event] = {}
        self._unknown: set[int] = set()

    @property
    def waiting(self) -> list[int]:
        """Ids of the jobs someone is waiting for."""
        return list(self._wakeups)

    def feed(self, update: CollectionUpdate) -> None:
        job = self._tracker.feed(update)
        if job is not None and update.id in self._wakeups:
            self._wakeups[update.id].set()

    def wake_all(self) -> None:
        """Let every waiter look again (the connection dropped, or jobs were re-attached)."""
        for wakeup in self._wakeups.values():
            wakeup.set()

    def reattach(self, call: Call) -> int:
        """After a reconnect: find the awaited jobs again by id; never start them again."""
        waiting = self.waiting
        if waiting:
            self._refresh(call, waiting)
            self.wake_all()
        return len(waiting)

    def wait(self, job_id: int, connect: Callable[[], Call], idle: float | None,
             on_progress: ProgressCallback | None) -> Any:
        """Block until the job ends; `connect()` returns a live link's call, reconnecting if needed."""
        wakeup = self._wakeups.setdefault(job_id, Event())
        self._tracker.watch(job_id)
        try:
            return self._follow(job_id, wakeup, connect, idle, on_progress)
        finally:
            self._wakeups.pop(job_id, None)
            self._unknown.discard(job_id)
            self._tracker.forget(job_id)

    def _follow(self, job_id: int, wakeup: Event, connect: Callable[[], Call], idle: float | None,
                on_progress: ProgressCallback | None) -> Any:
        if not self._tracker.get(job_id):
            self._refresh(connect(), [job_id])
        seen: Any = None
        while True:
            if job_id in self._unknown:
                raise JobUnknown(f"job {job_id} is not known to the server any more "
                                 "(it restarted, or the job was transient)", self.host)
            job = self._tracker.get(job_id) or {}
            if on_progress is not None and job and job.get("progress") != seen:
                seen = job.get("progress")
                on_progress(dict(job))
            if is_terminal(job):
                return self._tracker.consume(job_id)
            wakeup.clear()
            if not wakeup.wait(idle):
                self._check_idle(connect(), job_id, idle)
            connect()  # after a drop this reconnects, which re-attaches the job

    def _check_idle(self, call: Call, job_id: int, idle: float | None) -> None:
        """No event for `idle` seconds: ask once; a job still unfinished then has stalled."""
        self._refresh(call, [job_id])
        job = self._tracker.get(job_id) or {}
        if job_id not in self._unknown and not is_terminal(job):
            last = (job.get("progress") or {}).get("description") or "nothing"
            raise CallTimeout(f"job {job_id} made no progress for {idle:g} s (last: {last})", self.host)

    def _refresh(self, call: Call, job_ids: list[int]) -> None:
        found = call("core.get_jobs", [[["id", "in", job_ids]]])
        for job in found:
            self.feed(CollectionUpdate("changed", JOB_EVENT, job.get("id"), job))
        self._unknown |= set(job_ids) - {job.get("id") for job in found}
