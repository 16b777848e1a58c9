"""The simulated job engine: ids, states, progress events, locks, abort.

Follows middlewared's job.py (docs/protocol.md §9): integer ids from a
counter that restarts with the host (`JobsDeque._get_next_id`), WAITING ->
RUNNING -> SUCCESS / FAILED / ABORTED, an `added` event, a `changed` event per
state or progress change, a SUCCESS event at 100 % and a final `changed` with
`time_finished`; transient jobs emit nothing; about 1000 jobs are kept. Times
are naive UTC (`utc_now()` in utils/time_utils.py, `datetime.utcnow()` on
24.10). `Job.__encode__` always shows secret arguments as "********", and the
result redacted too unless `raw_result` (core.get_jobs for a client; events
carry it raw). A lock's queue is bounded as `JobsQueue.add` bounds it (see
`_full_queue`).
"""
from __future__ import annotations

import datetime as dt
import errno
import traceback
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from .clock import SimClock
from .config import Counters
from .failures import CallError, JobAborted, job_exc_info
from .registry import REGISTRY

MAX_JOBS = 1000
TERMINAL = frozenset({"SUCCESS", "FAILED", "ABORTED"})
REDACTED = "********"
Publisher = Callable[[str, "Job"], None]


class Job:
    """One job; `encode()` gives the wire dict of core.get_jobs and events."""

    def __init__(self, job_id: int, method: str, arguments: list[Any], *, message_id: Any,
                 credentials: dict[str, Any] | None, transient: bool, started: dt.datetime) -> None:
        self.id, self.method, self.arguments = job_id, method, arguments
        spec = next(iter(REGISTRY.get(method, ())), None)  # its schema says what is secret, in every version
        self.shown_arguments = spec.redact_args(arguments) if spec and spec.redact_args else arguments
        self.secret_result = bool(spec and spec.secret_result)
        self.message_ids = [] if message_id is None else [message_id]
        self.credentials, self.transient = credentials, transient
        self.limited = False  # its user may see only its own jobs (not a full admin)
        self.lock: str | None = None
        self.queued = False   # waiting for its lock: in job.py's JobsQueue.queue
        self.time_started = started
        self.time_finished: dt.datetime | None = None
        self.description: str | None = None
        self.progress: dict[str, Any] = {"percent": 0, "description": "", "extra": None}
        self.state, self.result = "WAITING", None
        self.error: str | None = None
        self.exception: str | None = None
        self.exc_info: dict[str, Any] | None = None
        self.failure: Exception | None = None
        self.finished = Event()
        self.aborted = False
        self.was_running = False
        self.greenlet: gevent.Greenlet | None = None
        self._publish: Publisher = lambda msg, job: None

    def encode(self, with_message_ids: bool = True, raw_result: bool = True) -> dict[str, Any]:
        result = self.result
        if self.secret_result and not raw_result and self.state == "SUCCESS":
            result = REDACTED
        data = {
            "id": self.id, "method": self.method, "arguments": self.shown_arguments,
            "transient": self.transient, "description": self.description, "abortable": True,
            "logs_path": None, "logs_excerpt": None, "progress": dict(self.progress),
            "result": result, "result_encoding_error": None, "error": self.error,
            "exception": self.exception, "exc_info": self.exc_info, "state": self.state,
            "time_started": self.time_started, "time_finished": self.time_finished,
            "credentials": self.credentials,
        }
        if with_message_ids:
            data["message_ids"] = list(self.message_ids)
        return data

    def set_progress(self, percent: float | None = None, description: str | None = None,
                     extra: Any = None) -> None:
        """Update progress; an event goes out only when something changed."""
        new = dict(self.progress)
        if percent is not None:
            new["percent"] = int(percent)
        if description:
            new["description"] = description
        if extra is not None:
            new["extra"] = extra
        if new != self.progress:
            self.progress = new
            self._publish("changed", self)


class JobEngine:
    """Runs a host's jobs; forgets everything on restart."""

    def __init__(self, clock: SimClock, publish: Publisher, counters: Counters, replies_released: Event) -> None:
        self.clock, self.publish, self.counters = clock, publish, counters
        self.replies_released = replies_released  # the host's switch: cleared, a job call's reply waits
        self.jobs: OrderedDict[int, Job] = OrderedDict()
        self._next_id = 1
        self._locks: dict[str, Semaphore] = {}
        self.running = 0

    def submit(self, method: str, arguments: list[Any], body: Callable[[Job], Any], *,
               message_id: Any = None, credentials: dict[str, Any] | None = None, limited: bool = False,
               transient: bool = False, lock: str | None = None, lock_queue_size: int | None = 5,
               description: str | None = None, message_ids: bool = True) -> Job:
        """Queue a job, send its `added` event, and start it; or hand back an already queued one.

        A client's job (one with credentials) is counted in `jobs_started`, and
        while the host holds job replies the call returns only once released:
        the job runs, its caller does not learn its id. Internal jobs are neither.
        `limited` is a caller that may see only its own jobs; `message_ids` is
        False on hosts whose jobs have none (before 25.10).
        """
        if lock is not None and lock_queue_size is not None:
            queued = self._full_queue(lock, lock_queue_size, credentials, limited)
            if queued is not None:
                if message_ids and message_id is not None:
                    queued.message_ids.append(message_id)
                    self._emit("changed", queued)
                return queued
        job = Job(self._next_id, method, arguments, message_id=message_id,
                  credentials=credentials, transient=transient, started=self._now())
        self._next_id += 1
        job.description, job.limited, job.lock, job.queued = description, limited, lock, lock is not None
        job._publish = self._emit
        self._remember(job)
        self._emit("added", job)
        job.greenlet = gevent.spawn(self._run, job, body, lock)
        if credentials is not None:
            self.counters.jobs_started += 1
            self.replies_released.wait()
        return job

    def _full_queue(self, lock: str, size: int, credentials: dict[str, Any] | None, limited: bool) -> Job | None:
        """job.py `JobsQueue.add`, the same at TS-24.10.2, TS-25.10.6 and TS-26.0.0-BETA.2.

        Size 0: EBUSY while a job holding the lock runs. Otherwise, with `size` jobs
        already waiting for the lock, the newest of them the caller may share is
        returned instead of a new job (25.10+ also adds the call's message id to its
        `message_ids` and sends a `changed` event); none, EBUSY. Jobs without a lock
        leave job.py's queue at once, so no bound applies to them here.
        """
        if size == 0:
            if any(j.lock == lock and j.state == "RUNNING" for j in self.jobs.values()):
                raise CallError("This job is already being performed", errno.EBUSY)
            return None
        queued = [j for j in self.jobs.values() if j.lock == lock and j.queued]
        if len(queued) < size:
            return None
        for job in reversed(queued):
            if not limited or _same_user(credentials, job.credentials):
                return job
        raise CallError("This job is already being performed by another user", errno.EBUSY)

    def abort(self, job: Job) -> None:
        """Abort a waiting or running job (no-op once it has ended)."""
        if job.state in TERMINAL:
            return
        job.aborted = True
        if job.state == "RUNNING" and job.greenlet is not None:
            job.greenlet.kill(JobAborted(), block=False)

    def kill_all(self) -> None:
        """Stop every greenlet: the middleware is going away."""
        gevent.killall([j.greenlet for j in self.jobs.values() if j.greenlet], block=False)

    def _now(self) -> dt.datetime:
        """Naive UTC, as job.py keeps its times."""
        return dt.datetime.fromtimestamp(self.clock.wall(), dt.timezone.utc).replace(tzinfo=None)

    def _remember(self, job: Job) -> None:
        self.jobs[job.id] = job
        while len(self.jobs) > MAX_JOBS:
            oldest = next((j for j in self.jobs.values() if j.state in TERMINAL), None)
            if oldest is None:
                break
            del self.jobs[oldest.id]

    def _emit(self, msg: str, job: Job) -> None:
        if not job.transient:
            self.publish(msg, job)

    def _run(self, job: Job, body: Callable[[Job], Any], lock: str | None) -> None:
        guard = self._locks.setdefault(lock, Semaphore()) if lock else None
        try:
            if guard is not None:
                guard.acquire()
            job.queued = False
            self._execute(job, body)
        except JobAborted:
            job.state = "ABORTED"
        finally:
            if guard is not None and guard.locked():
                guard.release()
            self._finish(job)

    def _execute(self, job: Job, body: Callable[[Job], Any]) -> None:
        if job.aborted:
            raise JobAborted()
        self._set_running(job)
        try:
            result = body(job)
        except JobAborted:
            raise
        except Exception as exc:  # the job's own failure, reported in its dict
            self._fail(job, exc)
            return
        job.state, job.result = "SUCCESS", result
        job.set_progress(100, "")

    def _set_running(self, job: Job) -> None:
        job.state, job.was_running = "RUNNING", True
        self.running += 1
        self.counters.peak_running_jobs = max(self.counters.peak_running_jobs, self.running)
        self._emit("changed", job)

    def _fail(self, job: Job, exc: Exception) -> None:
        job.state, job.error, job.failure = "FAILED", str(exc), exc
        job.exception = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        job.exc_info = job_exc_info(exc)

    def _finish(self, job: Job) -> None:
        if job.was_running:
            self.running -= 1
        if job.state not in TERMINAL:
            job.state = "ABORTED"
        job.time_finished = self._now()
        self._emit("changed", job)
        job.finished.set()
        if job.transient:
            self.jobs.pop(job.id, None)


def _same_user(mine: dict[str, Any] | None, theirs: dict[str, Any] | None) -> bool:
    """Both user sessions of one username (utils/privilege.py's test in `JobsQueue.add`)."""
    return mine is not None and theirs is not None and mine["data"]["username"] == theirs["data"]["username"]
