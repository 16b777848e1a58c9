"""The jobs a session is waiting for: merged state, a wake-up per wait, and what the server forgot.

Jobs are followed through `core.get_jobs` events (never polled). A job is looked
up by id only when its events may have been missed: when the wait starts, after
a reconnect (re-attach), and after each `idle` seconds of silence.

A job is known by its id *and* the boot id it was issued under: ids start again
at 1 when the middleware restarts and boot-time jobs take them at once
(docs/protocol.md §9). So when the session finds a new boot id, every wait on an
older boot ends JobUnknown and the merged state of the old boot is dropped;
events that arrive while the boot of a new connection is not known yet are
ignored (the re-attach after it reads the jobs again). A job id the server
answered a call with that names a job of other arguments was handed back by a
full lock queue (JobBusy); one of the same call is waited for as ours. A job that stays silent
is not lost: only one the server no longer lists is (JobUnknown). How long to
wait in all is the caller's bound (the job timeout or a fan-out deadline).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gevent.event import Event

from ..errors import ConnectionLost, JobBusy, JobUnknown
from ..protocol.jobs import JOB_EVENT, Job, JobRef, JobTracker, is_terminal, job_outcome
from ..protocol.jsonrpc import CollectionUpdate

log = logging.getLogger(__name__)

Call = Callable[[str, list[Any]], Any]          # a live link's call(method, params)
ProgressCallback = Callable[[Job], None]
RAW = {"extra": {"raw_result": True}}           # core.get_jobs redacts secret results without it


@dataclass(eq=False)
class _Wait:
    """One caller waiting for one job."""

    ref: JobRef
    wakeup: Event = field(default_factory=Event)
    lost: str | None = None  # why the job cannot be followed any more


class JobWatch:
    """Per-session job bookkeeping; the session feeds it events and boots and lends it a way to call."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.boot_id: str | None = None
        self._tracker = JobTracker(host)
        self._live = False  # events come from a connection to `boot_id`
        self._waits: dict[int, list[_Wait]] = {}

    @property
    def waiting(self) -> list[int]:
        """Ids of the jobs someone is waiting for and that may still be followed."""
        return [job_id for job_id, waits in self._waits.items() if any(not w.lost for w in waits)]

    def feed(self, update: CollectionUpdate) -> None:
        if not self._live:
            return
        job = self._tracker.feed(update)
        if job is not None:
            for wait in self._waits.get(job["id"] if update.id is None else update.id, ()):
                wait.wakeup.set()

    def link_down(self) -> None:
        """The connection dropped: ignore events until the next one says which boot it reached."""
        self._live = False
        self._wake_all()

    def booted(self, boot_id: str) -> None:
        """A connection is set up to `boot_id`: waits on any other boot end, as does their merged state."""
        if boot_id != self.boot_id:
            if self.boot_id is not None:
                self._tracker = JobTracker(self.host)
            self.boot_id = boot_id
            for waits in self._waits.values():
                for wait in waits:
                    if wait.ref.boot_id != boot_id and not wait.lost:
                        wait.lost = (f"job {wait.ref.id} was started before the middleware restarted "
                                     "(its boot id changed): its outcome is unknown, and it was not "
                                     "started again")
        self._live = True
        self._wake_all()

    def reattach(self, call: Call) -> int:
        """After a reconnect to the same boot: read the awaited jobs again by id; never start them again."""
        waits = [w for waits in self._waits.values() for w in waits if self._current(w)]
        if waits:
            self._refresh(call, waits)
            self._wake_all()
        return len(waits)

    def wait(self, ref: JobRef, connect: Callable[[], Call], idle: float | None,
             on_progress: ProgressCallback | None) -> Any:
        """Block until the job ends; `connect()` returns a live link's call, reconnecting if needed."""
        if ref.boot_id != self.boot_id:
            raise JobUnknown(f"job {ref.id} was started under another boot of the middleware "
                             "(it restarted since): its outcome is unknown, and it was not started again",
                             self.host)
        wait = _Wait(ref)
        self._waits.setdefault(ref.id, []).append(wait)
        self._tracker.watch(ref.id)
        try:
            return self._follow(wait, connect, idle, on_progress)
        finally:
            self._leave(wait)

    def _follow(self, wait: _Wait, connect: Callable[[], Call], idle: float | None,
                on_progress: ProgressCallback | None) -> Any:
        job_id = wait.ref.id
        if not self._tracker.get(job_id):
            self._refresh(connect(), [wait])
        seen: Any = None
        while True:
            wait.wakeup.clear()
            job = self._check(wait)
            if on_progress is not None and job and job.get("progress") != seen:
                seen = job.get("progress")
                on_progress(dict(job))
            if is_terminal(job):
                return job_outcome(job, self.host)
            if not wait.wakeup.wait(idle):
                self._check_idle(connect, wait, idle)
            connect()  # after a drop this reconnects, which re-attaches the job or ends it

    def _check(self, wait: _Wait) -> Job:
        """The job's merged state; JobUnknown if it is lost or turns out to be another call."""
        if wait.lost:
            raise JobUnknown(wait.lost, self.host)
        job = self._tracker.get(wait.ref.id) or {}
        mismatch = wait.ref.mismatch(job)
        if mismatch and wait.ref.submitted:  # the server's answer to that call, and one boot reuses no id
            raise JobBusy(f"{mismatch}: the lock's queue was full, and the server answered with a job "
                          "queued earlier instead of running this call; it was not adopted, nor sent again",
                          self.host)
        if mismatch:
            raise JobUnknown(f"{mismatch}; it was not adopted", self.host)
        return job

    def _check_idle(self, connect: Callable[[], Call], wait: _Wait, idle: float | None) -> None:
        """No event for `idle` seconds: ask once. A job still listed is waited for, however silent."""
        try:
            self._refresh(connect(), [wait])
        except ConnectionLost:
            return  # the next connect() reconnects and re-attaches
        job = self._tracker.get(wait.ref.id) or {}
        if self._current(wait) and not is_terminal(job):
            last = (job.get("progress") or {}).get("description") or "nothing yet"
            log.info("%s: job %s still %s after %g s without an event (last: %s)",
                     self.host, wait.ref.id, job.get("state", "listed"), idle or 0, last)

    def _refresh(self, call: Call, waits: list[_Wait]) -> None:
        """Read jobs by id (results unredacted); a job the server does not list is lost."""
        boot, tracker = self.boot_id, self._tracker
        ids = sorted({w.ref.id for w in waits if self._current(w)})
        if not ids:
            return
        found = call("core.get_jobs", [[["id", "in", ids]], RAW])
        if self.boot_id != boot:
            return  # the host restarted meanwhile: those waits have ended already
        for job in found:
            if is_terminal(tracker.get(job.get("id")) or {}):
                continue  # an event that came while the call was out told the end: this snapshot is older
            tracker.feed(CollectionUpdate("changed", JOB_EVENT, job.get("id"), job))
        missing = set(ids) - {job.get("id") for job in found}
        for wait in waits:
            if wait.ref.id in missing and self._current(wait):
                wait.lost = (f"job {wait.ref.id} is not known to the server any more (a transient "
                             "job that ended, or one dropped from its list of about 1,000 jobs)")
            wait.wakeup.set()

    def _current(self, wait: _Wait) -> bool:
        return wait.lost is None and wait.ref.boot_id == self.boot_id

    def _leave(self, wait: _Wait) -> None:
        waits = self._waits.get(wait.ref.id, [])
        if wait in waits:
            waits.remove(wait)
        if not waits:
            self._waits.pop(wait.ref.id, None)
        if wait.ref.boot_id == self.boot_id and not any(self._current(w) for w in waits):
            self._tracker.forget(wait.ref.id)

    def _wake_all(self) -> None:
        for waits in self._waits.values():
            for wait in waits:
                wait.wakeup.set()
