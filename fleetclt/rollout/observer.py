"""What a rollout tells the outside while it runs: host states and typed lifecycle events.

Displays (the CLI's terminal and log views, a web page, an agent) implement
`RolloutObserver`, or subclass `BaseObserver` and override only the events they
need, and are handed to `run_rollout(..., observers=[...])`; the engine never
learns about them. An observer that raises is logged and the rollout goes on.

Events of one run, in order: `stage_started`, then per host `host_started`
(a new job is being submitted), `host_progress`*, and one of `host_finished`
or `host_detached` (Ctrl-C); `host_unhealthy` after a stage when the health
gate fails a host that had finished ok; `halted` when the failure budget is
spent or a stop is asked (`Rollout.stop_new`, `fleetclt rollout stop`), at most once each;
`finished` last, exactly once. `host_started` means a submission, so a
host that cannot be reached before it, or whose job a resume re-attaches,
gets `host_finished` (or `host_detached`) without it.
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .engine import Rollout, RolloutResult
    from .journal import HostRecord


class HostState(str, enum.Enum):
    """Where one host is in a rollout; the values are what journals on disk and JSON reports hold."""

    WAITING = "waiting"              # its stage has not reached it yet
    SUBMITTING = "submitting"        # the job call is sent, its id not yet journaled
    RUNNING = "running"              # the job id is journaled; the job is followed to its end
    OK = "ok"
    NOT_STARTED = "not_started"      # the rollout halted or was interrupted before this host
    DETACHED = "detached"            # interrupted while its job ran: the job goes on, resume re-attaches
    UNHEALTHY = "unhealthy"          # its job succeeded but the health gate failed it
    GONE = "gone"                    # not in the inventory any more: a resume left it as the journal has it
    # a failed host takes the fan-out Status of its error (fleetclt.fleet.results.Status)
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    MAY_HAVE_RUN = "may_have_run"
    AUTH_FAILED = "auth_failed"
    THROTTLED = "throttled"
    TIMEOUT = "timeout"
    TLS_REJECTED = "tls_rejected"
    JOB_UNKNOWN = "job_unknown"
    STANDBY = "standby"
    REBOOT_REQUIRED = "reboot_required"
    HA_UNAVAILABLE = "ha_unavailable"
    BUSY = "busy"


ACTIVE = frozenset({HostState.SUBMITTING, HostState.RUNNING})          # a job may be running there
UNFINISHED = ACTIVE | {HostState.WAITING}                               # the engine still has work there
UNSTARTED = frozenset({HostState.WAITING, HostState.NOT_STARTED})      # no job was ever sent
NOT_FAILED = UNFINISHED | {HostState.OK, HostState.NOT_STARTED, HostState.DETACHED, HostState.GONE}
FAILED = frozenset(HostState) - NOT_FAILED                              # counted against the budget


class RolloutObserver(Protocol):
    """One method per lifecycle event; called in the engine's greenlets, so keep them short."""

    def stage_started(self, rollout: Rollout, index: int) -> None:
        """Stage `index` (0-based) starts; `rollout.plan.stages[index]` are its hosts."""

    def host_started(self, rollout: Rollout, record: HostRecord) -> None:
        """The job is being submitted to `record.host`."""

    def host_progress(self, rollout: Rollout, record: HostRecord, progress: dict[str, Any]) -> None:
        """The host's job reported progress (`percent`, `description`)."""

    def host_finished(self, rollout: Rollout, record: HostRecord) -> None:
        """The host's job ended; `record.state` is OK or a failure."""

    def host_unhealthy(self, rollout: Rollout, record: HostRecord) -> None:
        """After its stage, the health gate failed a host whose job had ended ok."""

    def host_detached(self, rollout: Rollout, record: HostRecord) -> None:
        """The rollout was stopped while this host's job ran; the job goes on."""

    def halted(self, rollout: Rollout, reason: str) -> None:
        """The failure budget is spent, or a stop was asked: no new job starts."""

    def finished(self, rollout: Rollout, result: RolloutResult) -> None:
        """The run is over (completed, halted or interrupted); the last event."""


class BaseObserver:
    """Every event ignored: subclass it and override only what a display needs."""

    def stage_started(self, rollout: Rollout, index: int) -> None:
        pass

    def host_started(self, rollout: Rollout, record: HostRecord) -> None:
        pass

    def host_progress(self, rollout: Rollout, record: HostRecord, progress: dict[str, Any]) -> None:
        pass

    def host_finished(self, rollout: Rollout, record: HostRecord) -> None:
        pass

    def host_unhealthy(self, rollout: Rollout, record: HostRecord) -> None:
        pass

    def host_detached(self, rollout: Rollout, record: HostRecord) -> None:
        pass

    def halted(self, rollout: Rollout, reason: str) -> None:
        pass

    def finished(self, rollout: Rollout, result: RolloutResult) -> None:
        pass
