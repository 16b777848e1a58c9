"""Batched job rollouts: stages, a failure budget for the whole run, health gates, resume.

    result = Rollout.start(fleet, RolloutPlan("update.update", ({},), batch="1,10%,100%",
                                              max_fail="5%"), hosts, observers=[view]).run()

Each host: the host's clock and boot id are read and its job submitted
(journal: `submitting`), its id recorded (`running`, job id and boot id), and
followed to the end through the session's job events.
A stage starts only when every job of the previous one has ended (and passed
the health gate); with `window=N` hosts flow through N slots instead. When the
failures exceed the budget no new job starts; running jobs finish, or are
aborted with `abort_on_halt`. A stage in which every host failed is judged by
the budget like any other (so `max_fail="100%"` never halts, unlike Ansible).
Resuming re-attaches to running jobs by id under the boot id that issued it,
finds a job whose id was never journaled without a time filter on the server,
and never submits a job twice. One process drives a run at a time (lock.py). A
resume may change the budget and the staging of hosts never started, and
narrow the hosts it works on; a host gone from the inventory is reported
`gone` and left as the journal has it, for a later resume.
Displays follow a run as observers (observer.py), each event a typed call.

With `upload` (files), a host's job is started by POST /_upload instead of a
call (fleet/upload.py): the token is asked for before the journal entry, the
job id comes from the upload's answer, and a resume treats that job like any
other, so a host whose upload began is never sent the file again. The files'
size and time are journaled; a resume refuses files that changed.

The journal is what a resume trusts, so a run that cannot write it (a full or
read-only disk) acts no more: no new job starts, and running jobs are left to
run unwatched (their ends could not be recorded), as after Ctrl-C. A host whose
`submitting` line failed is never sent its job; one whose job id could not be
written is found again by a resume, as after a kill (docs/rollouts.md).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Pool

from ..client.session import HostSession
from ..errors import ConfigError, FleetError, JobUnknown
from ..fleet.fleet import Fleet
from ..fleet.results import error_dict, status_of
from ..fleet.upload import send_upload, sources, upload_token
from ..protocol.jobs import JobRef, same_call
from .journal import (
    HostRecord,
    Journal,
    JournalWriteError,
    Replay,
    digest,
    hosts_digest,
    keep_days,
    prune,
    stored_plan,
)
from .observer import ACTIVE, FAILED, UNFINISHED, UNSTARTED, HostState, RolloutObserver
from .plan import RolloutPlan

log = logging.getLogger(__name__)

RECONCILE_SLACK = 5.0  # seconds of the host's clock: its steps, and $date's millisecond truncation
GONE = "not in the inventory any more"
OUTSIDE = "outside --hosts of this resume"
JOURNAL_FAILED = "journal write failed"  # how the stop reason of a run that could not journal begins


@dataclass
class RolloutResult:
    """Outcome of a rollout: each host's record, the stages, and why it stopped."""

    run_id: str
    plan: RolloutPlan
    hosts: dict[str, HostRecord]
    stop_reason: str

    @property
    def ok(self) -> bool:
        return all(record.state is HostState.OK for record in self.hosts.values())

    def to_dict(self) -> dict[str, Any]:
        hosts = {name: _host_row(record) for name, record in self.hosts.items()}
        summary: dict[str, int] = {}
        for row in hosts.values():
            summary[row["status"]] = summary.get(row["status"], 0) + 1
        return {"run_id": self.run_id, "method": self.plan.method, "stop_reason": self.stop_reason,
                "stages": [list(stage) for stage in self.plan.stages], "hosts": hosts, "summary": summary}


def _host_row(record: HostRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"status": record.state.value, "stage": record.stage + 1, "job_id": record.job_id}
    if record.state is HostState.OK:
        row["result"] = record.result
    elif record.error is not None:
        row["error"] = record.error
    row["started"], row["finished"] = record.started, record.finished
    if record.started and record.finished:
        row["elapsed"] = round(record.finished - record.started, 3)
    return row


class Rollout:
    """One rollout run; `run()` blocks until it completed, halted or was stopped."""

    def __init__(self, fleet: Fleet, plan: RolloutPlan, journal: Journal, records: dict[str, HostRecord],
                 observers: Sequence[RolloutObserver] = (), skipped: dict[str, str] | None = None) -> None:
        self.fleet, self.plan, self.journal, self.records = fleet, plan, journal, records
        self.observers = list(observers)
        self.skipped = skipped or {}  # host -> why this run leaves it as the journal has it
        self.halted: str | None = self._over_budget() if plan.budget.exceeded(*self.counts()) else None
        self._stop = Event()    # interrupted: detach from running jobs
        self._wake = Event()    # ends a --pause early: interrupted, or a stop asked
        self.stop_asked: str | None = None  # `fleetclt rollout stop`: no new job, running ones followed
        self.journal_failed: str | None = None  # a journal write failed: nothing more is started or followed
        self._running: dict[str, gevent.Greenlet] = {}
        self.job_progress: dict[str, dict[str, Any]] = {}
        self.stage_index = 0
        self._uploads = sources(plan.upload) if plan.upload else []

    @classmethod
    def start(cls, fleet: Fleet, plan: RolloutPlan, hosts: list[str],
              observers: Sequence[RolloutObserver] = ()) -> Rollout:
        """Plan the stages now and write them to a new journal."""
        plan = plan.with_stages(hosts)
        prune(keep_days())
        header: dict[str, Any] = {"plan": stored_plan(plan.to_json()), "inventory": _inventory_path(fleet),
                  "hosts_digest": _hosts_digest(fleet, hosts)}
        if plan.upload:
            header["upload_files"] = _upload_stamps(plan.upload)
        journal = Journal.create(header)
        return cls(fleet, plan, journal, _records(plan), observers)

    @classmethod
    def resume(cls, fleet: Fleet, journal: Journal, replay: Replay, observers: Sequence[RolloutObserver] = (),
               *, params: Sequence[Any] | None = None, hosts: Sequence[str] | None = None,
               **options: Any) -> Rollout:
        """Continue a journaled rollout: running jobs are re-attached, never resubmitted.

        `params`: the job's arguments given again (needed when they hold secrets,
        which the journal keeps only as a digest); `hosts`: work on these of the
        run's hosts only; `options`: RolloutPlan options to change (batch,
        window, max_fail, ...), written to the journal for later resumes.
        """
        try:
            return cls._resumed(fleet, journal, replay, observers, params, hosts, options)
        except BaseException:
            journal.close()
            raise

    @classmethod
    def _resumed(cls, fleet: Fleet, journal: Journal, replay: Replay, observers: Sequence[RolloutObserver],
                 params: Sequence[Any] | None, hosts: Sequence[str] | None, options: dict[str, Any]) -> Rollout:
        plan = _journaled_plan(journal.run_id, replay.plan, params)
        if plan.upload and replay.header.get("upload_files") != _upload_stamps(plan.upload):
            raise ConfigError(f"the files rollout {journal.run_id} uploads changed since it started (size or "
                              "time): its hosts would not all get the same file")
        records = _records(plan)
        for name, record in replay.hosts.items():
            if name in records:
                record.stage, records[name] = records[name].stage, record
        unstarted = {name for name, record in records.items() if record.state is HostState.WAITING}
        if options:
            plan = plan.changed(unstarted, **options)
            for name, record in _records(plan).items():
                records[name].stage = record.stage
        skipped = _skipped(journal.run_id, fleet, records, hosts)
        if replay.header.get("hosts_digest") not in (None, _hosts_digest(fleet, list(records))):
            log.warning("rollout %s: the inventory's entries for its hosts changed since it started", journal.run_id)
        journal.note("resumed", **({"plan": stored_plan(plan.to_json())} if options else {}),
                     hosts=None if hosts is None else list(hosts), skipped=skipped)
        return cls(fleet, plan, journal, records, observers, skipped)

    @property
    def run_id(self) -> str:
        return self.journal.run_id

    # -- running -----------------------------------------------------------------------
    def run(self) -> RolloutResult:
        """Run to the end; the run's lock is released on return."""
        try:
            try:
                self._run_stages()
            except JournalWriteError as exc:
                self._journal_lost(exc)
            return self._finish()
        finally:
            self.journal.close()

    def _run_stages(self) -> None:
        for index, stage in enumerate(self.plan.stages):
            if self._stopping():
                break
            self._run_stage(index, [name for name in stage if name not in self.skipped])
            if self.plan.health and not self._stop.is_set() and self.journal_failed is None:
                self._health_gate(stage)
            if self.plan.pause and index + 1 < len(self.plan.stages) and not self._stopping():
                self._wake.wait(self.plan.pause)

    def stop(self) -> None:
        """Ctrl-C once: start nothing new and detach from running jobs (they go on; resume later)."""
        self._stop.set()
        self._wake.set()
        for greenlet in list(self._running.values()):
            greenlet.kill(block=False)

    def stop_new(self, abort: bool = False) -> None:
        """`fleetclt rollout stop`: start nothing new; running jobs are followed to their end and
        recorded, or with `abort` aborted on their hosts (core.job_abort) and recorded as they end.

        Unlike stop(), nothing is left running unwatched, so the journal ends with every started
        host's outcome; a resume starts the hosts never started.
        """
        if self.stop_asked is None:
            self.stop_asked = "stop asked (fleetclt rollout stop" + (" --abort)" if abort else ")")
            self._wake.set()
            self._notify(lambda observer: observer.halted(self, str(self.stop_asked)))
        try:
            self.journal.note("stop_asked", abort=abort)
        except JournalWriteError as exc:
            self._journal_lost(exc)
        if abort:
            self._abort_running()

    def _journal_lost(self, exc: JournalWriteError) -> None:
        """A journal write failed: start nothing more and detach from running jobs, which go on unrecorded."""
        if self.journal_failed is not None:
            return
        self.journal_failed = str(exc)
        self._wake.set()
        self._notify(lambda observer: observer.halted(self, f"{exc}; nothing more can be recorded"))
        for greenlet in list(self._running.values()):
            if greenlet is not gevent.getcurrent():
                greenlet.kill(block=False)

    def _stopping(self) -> bool:
        return (self._stop.is_set() or self.halted is not None or self.stop_asked is not None
                or self.journal_failed is not None)

    def _notify(self, event: Callable[[RolloutObserver], None]) -> None:
        """Tell every observer; a failing display is logged and never stops the rollout."""
        for observer in self.observers:
            try:
                event(observer)
            except Exception:
                log.exception("rollout %s: observer %r failed", self.run_id, observer)

    def _run_stage(self, index: int, names: list[str]) -> None:
        pending = [n for n in names if self.records[n].state in UNFINISHED]
        if not pending:
            return
        self.stage_index = index
        self.journal.note("stage", stage=index, hosts=names)
        self._notify(lambda observer: observer.stage_started(self, index))
        pool = Pool(min(self.plan.window or len(pending), self.fleet.forks))
        for name in pending:
            pool.wait_available()
            if self._stopping() and (self.records[name].state is HostState.WAITING or self.journal_failed):
                continue
            self._running[name] = pool.spawn(self._run_host, self.records[name])
        pool.join()

    def _run_host(self, record: HostRecord) -> None:
        try:
            self._follow_host(record)
        except JournalWriteError as exc:
            self._journal_lost(exc)
            if record.state in ACTIVE:
                self._notify(lambda observer: observer.host_detached(self, record))
        finally:
            self._running.pop(record.host, None)

    def _follow_host(self, record: HostRecord) -> None:
        try:
            session = self.fleet.connected(record.host)
            ref = self._job_of(session, record)
            result = session.wait_job(ref, on_progress=lambda job: self._on_progress(record, job))
        except JournalWriteError:
            raise  # the host's state is not what failed
        except FleetError as exc:
            self._settle(record, HostState(status_of(exc).value), error=error_dict(exc))
        except gevent.GreenletExit:
            self._notify(lambda observer: observer.host_detached(self, record))
        else:
            self._settle(record, HostState.OK, result=result)

    def _job_of(self, session: HostSession, record: HostRecord) -> JobRef:
        """The host's job: the journaled one, the one a killed run sent (reconciled), or a new one."""
        if record.job_id is not None:
            if record.boot_id is None:
                raise JobUnknown(f"the journal does not say which boot of the middleware job {record.job_id} "
                                 "was started under (written by an older fleetclt); check the host, "
                                 "nothing was resubmitted", record.host)
            return JobRef(record.boot_id, record.job_id, self._method_on(session), self.plan.params, submitted=True)
        job = self._reconcile(session, record) if record.state is HostState.SUBMITTING else self._submit(
            session, record)
        record.state, record.job_id, record.boot_id = HostState.RUNNING, job.id, job.boot_id
        self.journal.host(record)
        return job

    def _method_on(self, session: HostSession) -> str:
        """The plan's method under the name this host has for it (update.run from 25.10, docs/protocol.md §14)."""
        return session.method_for(self.plan.method, list(self.plan.params))

    def _submit(self, session: HostSession, record: HostRecord) -> JobRef:
        # Everything that may ask the host something comes before the journal entry: from
        # it on, the next step is the job call itself, so a kill leaves no gap before it.
        method = self._method_on(session)
        host_time = _host_clock(session.call("system.info", retry_safe=True))
        token = upload_token(session) if self._uploads else None
        record.state, record.started = HostState.SUBMITTING, time.time()
        record.boot_id, record.host_time = session.boot_id, host_time
        try:
            self.journal.host(record)
        except JournalWriteError:  # not journaled, so not sent: the host is as it was
            record.state, record.started, record.boot_id, record.host_time = HostState.WAITING, None, None, None
            raise
        self._notify(lambda observer: observer.host_started(self, record))
        if token is not None:
            return send_upload(session, token, record.boot_id, self._uploads,
                               method, self.plan.params)
        return session.start_job(method, *self.plan.params)

    def _reconcile(self, session: HostSession, record: HostRecord) -> JobRef:
        """The process died between sending the call and journaling the id: find that job.

        Only under the boot it was sent to. The server is asked by method only:
        a `time_started` filter fails on 24.10 to 26.0 (docs/protocol.md §9).
        Our job is one of a user (not internal), with our arguments, started no
        earlier than the host's clock read before the call (less RECONCILE_SLACK
        for clock steps). Exactly one such job is adopted; otherwise JobUnknown
        names the candidates. Nothing is ever submitted again.
        """
        if record.boot_id is None or record.host_time is None:
            raise JobUnknown("the journal lacks the host's boot id or clock at submission (written by an older "
                             "fleetclt): cannot tell which job was started; check the host, nothing was resubmitted",
                             record.host)
        method = self._method_on(session)
        jobs = session.call("core.get_jobs", [["method", "=", method]], retry_safe=True)
        if session.boot_id != record.boot_id:
            raise JobUnknown("the middleware restarted since the job was submitted: a job it ran is gone; "
                             "check the host, nothing was resubmitted", record.host)
        since = record.host_time - RECONCILE_SLACK
        matches = [int(job["id"]) for job in jobs
                   if job.get("credentials") is not None and _started(job) >= since
                   and same_call(job, method, self.plan.params)]
        if len(matches) != 1:
            raise JobUnknown(f"cannot tell which job was started before the interruption ({len(matches)} "
                             f"candidates{': ' if matches else ''}{', '.join(map(str, matches))}); check the host, "
                             "nothing was resubmitted", record.host)
        return JobRef(record.boot_id, matches[0], method, self.plan.params)

    def _on_progress(self, record: HostRecord, job: dict[str, Any]) -> None:
        progress = self.job_progress[record.host] = job.get("progress") or {}
        self._notify(lambda observer: observer.host_progress(self, record, progress))

    def _settle(self, record: HostRecord, state: HostState, *, result: Any = None,
                error: dict[str, Any] | None = None) -> None:
        record.state, record.result, record.error, record.finished = state, result, error, time.time()
        self.journal.host(record)
        if state is HostState.UNHEALTHY:
            self._notify(lambda observer: observer.host_unhealthy(self, record))
        else:
            self._notify(lambda observer: observer.host_finished(self, record))
        self._check_budget()

    # -- budget, halt, health ------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        """(failed, started) over the whole rollout."""
        failed = sum(1 for r in self.records.values() if r.state in FAILED)
        started = sum(1 for r in self.records.values() if r.state not in UNSTARTED)
        return failed, started

    def _check_budget(self) -> None:
        if self.halted is None and self.plan.budget.exceeded(*self.counts()):
            self._halt(self._over_budget())

    def _over_budget(self) -> str:
        """Why the budget is spent, counted now: every failure so far, not just those up to the halt."""
        failed, started = self.counts()
        return f"{failed} of {started} started hosts failed, beyond --max-fail {self.plan.budget}"

    def _halt(self, reason: str) -> None:
        self.halted = reason
        self.journal.note("halted", reason=reason)
        self._notify(lambda observer: observer.halted(self, reason))
        if self.plan.abort_on_halt:
            self._abort_running()

    def _abort_running(self) -> None:
        for name, record in self.records.items():
            if record.state is HostState.RUNNING and record.job_id is not None:
                gevent.spawn(self._abort, name, JobRef(record.boot_id, record.job_id))

    def _abort(self, name: str, job: JobRef) -> None:
        try:
            self.fleet[name].abort_job(job)
        except FleetError as exc:
            log.warning("%s: could not abort job %s: %s", name, job.id, exc)

    def _health_gate(self, stage: tuple[str, ...]) -> None:
        method, *params = self.plan.health_call
        passed = [name for name in stage if self.records[name].state is HostState.OK and name not in self.skipped]
        results = self.fleet.call(method, *params, hosts=passed) if passed else {}
        for name, outcome in results.items():
            if not (outcome.ok and outcome.result):
                error = error_dict(outcome.error) if outcome.error else {
                    "type": "HealthCheck", "reason": f"{method} returned {outcome.result!r}"}
                self._settle(self.records[name], HostState.UNHEALTHY, error=error)

    def _finish(self) -> RolloutResult:
        """The report's states (the journal keeps the last real ones, for a resume) and the stop reason."""
        interrupted = self._stop.is_set()
        left = [r.host for r in self.records.values() if r.state in UNFINISHED]
        if self.journal_failed is None:
            try:
                self.journal.note("stopped", reason=self._stop_reason(interrupted, left))
            except JournalWriteError as exc:
                self._journal_lost(exc)
        reason = self._stop_reason(interrupted, left)
        lost = self.journal_failed is not None
        for record in self.records.values():
            why = self.skipped.get(record.host)
            if why == GONE and record.state in UNFINISHED:
                record.state, record.error = HostState.GONE, {"type": "NotInInventory", "reason": why}
            elif record.state is HostState.WAITING and (interrupted or self.halted or self.stop_asked or why or lost):
                record.state = HostState.NOT_STARTED
            elif record.state in ACTIVE and (interrupted or why or lost):
                record.state = HostState.DETACHED
        result = RolloutResult(self.run_id, self.plan, self.records, reason)
        self._notify(lambda observer: observer.finished(self, result))
        return result

    def _stop_reason(self, interrupted: bool, left: list[str]) -> str:
        """Never `completed` while a host of the run is still running or waiting."""
        resume = f"resume with: fleetclt rollout --resume {self.run_id}"
        if self.journal_failed is not None:
            running = sum(1 for r in self.records.values() if r.state in ACTIVE)
            return (f"{JOURNAL_FAILED}: {self.journal_failed}; no new job was started, {running} running "
                    f"job(s) go on unrecorded; once the disk is fixed, {resume}")
        if interrupted:
            return f"interrupted; {resume}"
        if self.stop_asked and left:  # before a halt: the jobs it aborted count as failed
            return f"stopped: {len(left)} of {len(self.records)} hosts not started, as asked; {resume}"
        if self.halted:
            return f"halted: {self._over_budget()}"
        if left:
            why = sorted({self.skipped.get(name, "not finished") for name in left})
            return f"incomplete: {len(left)} of {len(self.records)} hosts not done ({'; '.join(why)}); {resume}"
        return "completed"


def journaled_result(run_id: str, replay: Replay) -> RolloutResult:
    """A run's report from its journal alone (`fleetclt rollout attach` once it ended): hosts never
    started show as not_started, and jobs it left running as detached, as the run's own report did."""
    plan = _journaled_plan(run_id, replay.plan, None, redacted=True)
    records = _records(plan)
    for name, record in replay.hosts.items():
        if name in records:
            record.stage, records[name] = records[name].stage, record
    for record in records.values():
        if record.state is HostState.WAITING:
            record.state = HostState.NOT_STARTED
        elif record.state in ACTIVE:
            record.state = HostState.DETACHED
    return RolloutResult(run_id, plan, records, replay.stop_reason or "not running")


def _records(plan: RolloutPlan) -> dict[str, HostRecord]:
    """A fresh record per host of the plan, in its stage."""
    return {name: HostRecord(name, index) for index, stage in enumerate(plan.stages) for name in stage}


def _inventory_path(fleet: Fleet) -> str:
    """Absolute, so a resume from another directory reads the same file."""
    path = fleet.inventory.path
    return os.path.abspath(path) if path and os.path.isfile(path) else path


def _hosts_digest(fleet: Fleet, names: Iterable[str]) -> str:
    hosts = fleet.inventory.hosts
    return hosts_digest((name, hosts[name].uri if name in hosts else "") for name in names)


def _journaled_plan(run_id: str, data: dict[str, Any], params: Sequence[Any] | None,
                    redacted: bool = False) -> RolloutPlan:
    """The plan from a journal; job arguments given again must be those it started with.

    `redacted`: a plan to show, not to run, so arguments kept only as a digest may stay redacted.
    """
    data = dict(data)
    expected = data.pop("params_digest", None) or digest(data["params"])
    if redacted:
        return RolloutPlan.from_json(data)
    if params is not None:
        if digest(list(params)) != expected:
            raise ConfigError(f"these job arguments are not the ones rollout {run_id} started with")
        data["params"] = list(params)
    elif digest(data["params"]) != expected:
        raise ConfigError(f"rollout {run_id}'s job arguments hold secrets, which its journal keeps only as a "
                          "digest: give the method and the same arguments again")
    return RolloutPlan.from_json(data)


def _skipped(run_id: str, fleet: Fleet, records: dict[str, HostRecord],
             hosts: Sequence[str] | None) -> dict[str, str]:
    """Hosts this resume leaves alone: gone from the inventory, or outside a narrowing `hosts`."""
    if hosts is not None:
        outside = [name for name in hosts if name not in records]
        if outside:
            more = f" and {len(outside) - 5} more" if len(outside) > 5 else ""
            raise ConfigError(f"{', '.join(outside[:5])}{more} not in rollout {run_id}: on resume, the hosts "
                              "can only narrow the run's")
    chosen = set(records if hosts is None else hosts)
    unfinished = [name for name, record in records.items() if record.state in UNFINISHED]
    return {name: GONE if name not in fleet.inventory.hosts else OUTSIDE
            for name in unfinished if name not in fleet.inventory.hosts or name not in chosen}


def _upload_stamps(paths: Sequence[str]) -> list[list[Any]]:
    """[path, size, mtime_ns] of each file a rollout uploads: what a resume checks them against."""
    stamps = []
    for path in paths:
        try:
            status = os.stat(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        stamps.append([path, status.st_size, status.st_mtime_ns])
    return stamps


def _host_clock(info: Any) -> float | None:
    """The host's own time (epoch seconds) from system.info, or None if it gave none."""
    now = info.get("datetime") if isinstance(info, dict) else None
    return _epoch(now) if isinstance(now, dt.datetime) else None


def _started(job: dict[str, Any]) -> float:
    """A job's start on the host's clock, epoch seconds (-inf if unknown).

    The server's times are naive UTC; ejson brings them as aware UTC datetimes.
    """
    started = job.get("time_started")
    return _epoch(started) if isinstance(started, dt.datetime) else float("-inf")


def _epoch(value: dt.datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).timestamp()


def run_rollout(fleet: Fleet, method: str, *params: Any, hosts: str | Iterable[str],
                observers: Sequence[RolloutObserver] = (), **options: Any) -> RolloutResult:
    """Run `method` as a job on the selected hosts in stages: plan, journal and run in one call.

    `hosts` has no default, as the CLI's --hosts: a forgotten selection must not update every
    host ("all" says it on purpose).

    `options` are RolloutPlan's: batch ("1,10%,100%", 5 or [1, "10%"]), max_fail (2 or "5%"),
    window, pause, health ("system.ready" or ("method", *params)), abort_on_halt, stall_after.
    The rollout runs where the fleet's greenlets run (its hub thread in thread mode), so
    observers are called there.
    """
    plan = RolloutPlan(method, tuple(params), **options)
    return fleet.in_hub(lambda: Rollout.start(fleet, plan, fleet.select(hosts), observers).run())
