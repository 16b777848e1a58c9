"""Sans-IO job bookkeeping: ``core.get_jobs`` events in, per-job state and outcomes out.

The session subscribes to JOB_EVENT once and feeds every CollectionUpdate to a
JobTracker. Jobs are followed through events, never by polling (a poll costs one
of the connection's call slots). The tracker keeps:

* the jobs someone waits for (``watch``) until their outcome is consumed or
  they are forgotten;
* a small, bounded window of other recent jobs, because a job's first events
  can arrive before the reply that names it (legacy jobs) and because new-style
  jobs are only found through ``message_ids`` (docs/protocol.md §4, §9).

Jobs of other clients pass through that window and fall out of it, so memory
does not grow with unrelated jobs.

A job id alone names no job: ids start again at 1 when the middleware restarts
(docs/protocol.md §9). A JobRef pairs it with the boot id it was issued under,
and `same_call` tells whether a job found by id is the call that was sent.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import JobFailed, ProtocolError, SessionError, ValidationError
from .jsonrpc import INVALID_PARAMS, CollectionUpdate, is_int

JOB_EVENT = "core.get_jobs"
TERMINAL_STATES = frozenset({"SUCCESS", "FAILED", "ABORTED"})
REDACTED = "********"  # how the server shows a secret argument or result

Job = dict[str, Any]
# Fields the tracker reads, with the type the server sends when they are not null.
_FIELD_TYPES: dict[str, type] = {"state": str, "message_ids": list, "error": str, "exc_info": dict}


@dataclass(frozen=True)
class JobRef:
    """A job as its host knows it: the id under the boot id it was issued under.

    `boot_id` None means the host's current boot (a bare id from the caller).
    `method` and `arguments`, when known, are what was submitted: a job found
    by id that is another call is not adopted. `submitted` says the id is the
    server's answer to that very call, so such a job was handed back by a full
    lock queue (docs/protocol.md §9).
    """

    boot_id: str | None
    id: int
    method: str | None = None
    arguments: tuple[Any, ...] = ()
    submitted: bool = False

    def mismatch(self, job: Job) -> str | None:
        """Why `job` is not the call this ref was made for, or None if it is (or cannot be told)."""
        if self.method is None or "method" not in job:
            return None
        if same_call(job, self.method, self.arguments):
            return None
        return (f"job {self.id} is {job.get('method')}{_args_text(job.get('arguments'))}, "
                f"not the {self.method} that was submitted")


def same_call(job: Job, method: str, arguments: Sequence[Any]) -> bool:
    """Whether a job dict is a call of `method` with `arguments`.

    The server shows the arguments after filling in defaults and with secrets
    as "********", so every argument sent must be found in the job's, a
    redacted value matching anything.
    """
    return job.get("method") == method and _covers(job.get("arguments"), list(arguments))


def _covers(shown: Any, sent: Any) -> bool:
    if isinstance(shown, str) and shown == REDACTED:
        return True
    if isinstance(sent, dict):
        return isinstance(shown, dict) and all(key in shown and _covers(shown[key], value)
                                               for key, value in sent.items())
    if isinstance(sent, (list, tuple)):
        return (isinstance(shown, (list, tuple)) and len(shown) >= len(sent)
                and all(_covers(a, b) for a, b in zip(shown, sent, strict=False)))
    return bool(shown == sent)


def _args_text(arguments: Any) -> str:
    text = repr(arguments) if isinstance(arguments, list) else ""
    return f"({text[1:-1]:.60})" if text else ""


def is_terminal(job: Job) -> bool:
    """A job in SUCCESS, FAILED or ABORTED will never change again."""
    state = job.get("state")
    return isinstance(state, str) and state in TERMINAL_STATES


def job_outcome(job: Job, host: str = "") -> Any:
    """Return a finished job's result, or raise what its failure means to the caller.

    FAILED with ``exc_info.type == "VALIDATION"`` raises ValidationError (``extra``
    holds the triples); other failures and ABORTED raise JobFailed.
    """
    if not is_terminal(job):
        raise ValueError(f"job {job.get('id')} has not finished (state {job.get('state')!r})")
    if job["state"] == "SUCCESS":
        return job.get("result")
    raise job_error(job, host)


def job_error(job: Job, host: str = "") -> SessionError:
    """The exception for a FAILED or ABORTED job dict."""
    raw_info = job.get("exc_info")
    exc_info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    error = str(job.get("error") or "")
    if job.get("state") == "FAILED" and exc_info.get("type") == "VALIDATION":
        trace = {"class": exc_info.get("type"), "formatted": job.get("exception"),
                 "repr": exc_info.get("repr")}
        return ValidationError(error.rstrip("\n") or "validation failed", host,
                               code=INVALID_PARAMS, errno=exc_info.get("errno"),
                               reason=error, trace=trace, extra=exc_info.get("extra"))
    aborted = job.get("state") == "ABORTED"
    what = "was aborted" if aborted else f"failed: {error or 'no error given'}"
    return JobFailed(f"job {job.get('id')} ({job.get('method')}) {what}", host, job=job)


class JobTracker:
    """Merges ``core.get_jobs`` updates into per-job dicts, bounded in memory."""

    def __init__(self, host: str = "", recent: int = 64) -> None:
        self.host = host
        self._recent_max = recent
        self._watched: dict[int, Job] = {}
        self._recent: dict[int, Job] = {}  # insertion order: oldest first

    def feed(self, update: CollectionUpdate) -> Job | None:
        """Merge one update; return the job's merged dict, or None if it is not a job update."""
        if update.collection != JOB_EVENT:
            return None
        job_id = update.id if update.id is not None else update.fields.get("id")
        if not is_int(job_id):
            raise ProtocolError(f"job update without an integer id: {job_id!r:.80}", self.host)
        self._check(update.fields)
        if update.msg == "removed":
            self._recent.pop(job_id, None)
            return None
        job = self._watched.get(job_id)
        if job is None:
            job = self._recent.pop(job_id, {})
            self._recent[job_id] = job
        job.update(update.fields)
        self._evict()
        return job

    def watch(self, job_id: int) -> Job:
        """Keep this job until consumed; returns what is known of it so far (maybe finished)."""
        job = self._watched.get(job_id)
        if job is None:
            job = self._watched[job_id] = self._recent.pop(job_id, {})
        return job

    def get(self, job_id: int) -> Job | None:
        """The merged dict of a watched or recent job."""
        return self._watched[job_id] if job_id in self._watched else self._recent.get(job_id)

    def consume(self, job_id: int) -> Any:
        """Forget a finished job and return its result or raise its error (see job_outcome).

        KeyError if the job is unknown; ValueError, keeping it, if it has not finished.
        """
        job = self.get(job_id)
        if job is None:
            raise KeyError(job_id)
        if is_terminal(job):
            self.forget(job_id)
        return job_outcome(job, self.host)  # ValueError for an unfinished job, which is kept

    def forget(self, job_id: int) -> None:
        """Stop keeping a job (its waiter gave up or got its outcome)."""
        self._watched.pop(job_id, None)
        self._recent.pop(job_id, None)

    def __len__(self) -> int:
        return len(self._watched) + len(self._recent)

    def _check(self, fields: dict[str, Any]) -> None:
        for key, kind in _FIELD_TYPES.items():
            value = fields.get(key)
            if value is not None and not isinstance(value, kind):
                raise ProtocolError(f"job field {key!r} is not a {kind.__name__}: {value!r:.80}",
                                    self.host)

    def _evict(self) -> None:
        while len(self._recent) > self._recent_max:
            self._recent.pop(next(iter(self._recent)))

