"""Outcomes of a fan-out: one HostResult per host, gathered in a FleetResult.

Fan-out returns outcomes, not exceptions (as nornir, parallel-ssh and Ansible
do): a bad host is one row with its own status while the rest of the fleet
proceeds. Raising is opt-in with `raise_on_error()`.
"""
from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import (
    AuthError,
    CallTimeout,
    ConnectionLost,
    FleetError,
    InsecureCredentialError,
    JobBusy,
    JobUnknown,
    OutcomeUnknown,
    StandbyError,
    ThrottledError,
    TLSError,
    UnreachableError,
    without_host,
)
from ..protocol.jsonrpc import EBUSY, EHAUNAVAILABLE, EREBOOTREQUIRED, is_rate_limited
from ..protocol.redact import redact


class Status(str, enum.Enum):
    """What happened on one host; the values are what JSON output and scripts see."""

    OK = "ok"
    FAILED = "failed"                # the server answered with an error, or the job failed
    UNREACHABLE = "unreachable"      # no websocket could be opened, or it dropped before the call left
    MAY_HAVE_RUN = "may_have_run"    # the connection dropped after the call left: it may have run; not sent again
    AUTH_FAILED = "auth_failed"      # credentials refused (never retried automatically)
    THROTTLED = "throttled"          # the auth budget is spent, locally or on the server
    TIMEOUT = "timeout"              # no answer in time, or the whole operation's deadline passed
    TLS_REJECTED = "tls_rejected"    # certificate not trusted or not matching its pin
    JOB_UNKNOWN = "job_unknown"      # the host no longer knows the job (it restarted)
    STANDBY = "standby"              # an HA standby controller: the reason names the active one
    REBOOT_REQUIRED = "reboot_required"  # errno 209: an update was applied, the host waits for a reboot
    HA_UNAVAILABLE = "ha_unavailable"    # errno 210: HA is configured but degraded
    BUSY = "busy"                    # errno 16 (not the rate limit): e.g. a job lock's queue is full; not run


_STATUS_OF: tuple[tuple[type[BaseException], Status], ...] = (
    (TLSError, Status.TLS_REJECTED),
    (UnreachableError, Status.UNREACHABLE),
    (OutcomeUnknown, Status.MAY_HAVE_RUN),
    (ConnectionLost, Status.UNREACHABLE),
    (StandbyError, Status.STANDBY),
    (AuthError, Status.AUTH_FAILED),
    (InsecureCredentialError, Status.AUTH_FAILED),
    (ThrottledError, Status.THROTTLED),
    (CallTimeout, Status.TIMEOUT),
    (JobUnknown, Status.JOB_UNKNOWN),
    (JobBusy, Status.BUSY),
)


_STATUS_OF_ERRNO = {EREBOOTREQUIRED: Status.REBOOT_REQUIRED, EHAUNAVAILABLE: Status.HA_UNAVAILABLE}


def status_of(error: BaseException) -> Status:
    """The status a host gets for an error (a dropped connection counts as unreachable).

    A call or job that failed with errno 209 or 210 gets a status of its own, so a
    rollout can tell "reboot first" and "HA degraded" from a broken host. EBUSY is
    two things: the server's rate limit (throttled, as a refused login is) or work
    that is busy, such as a job lock's full queue (busy).
    """
    code = getattr(error, "errno", None)
    if code in _STATUS_OF_ERRNO:
        return _STATUS_OF_ERRNO[code]
    if code == EBUSY:
        return Status.THROTTLED if is_rate_limited(error) else Status.BUSY
    return next((status for kind, status in _STATUS_OF if isinstance(error, kind)), Status.FAILED)


@dataclass(frozen=True)
class HostResult:
    """The outcome on one host: `result` when ok, `error` otherwise; `elapsed` in seconds."""

    host: str
    status: Status
    result: Any = None
    error: FleetError | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status is Status.OK

    @classmethod
    def from_error(cls, host: str, error: FleetError, elapsed: float) -> HostResult:
        return cls(host, status_of(error), error=error, elapsed=elapsed)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output; an error becomes its class name and message."""
        data: dict[str, Any] = {"host": self.host, "status": self.status.value, "elapsed": round(self.elapsed, 3)}
        if self.ok:
            data["result"] = self.result
        elif self.error is not None:
            data["error"] = error_dict(self.error)
        return data


def error_dict(error: FleetError) -> dict[str, Any]:
    """errno, errname, reason and extra as the server sent them (credentials in extra masked);
    our own errors have only a reason."""
    reason = getattr(error, "reason", None) or without_host(error)
    return {"type": type(error).__name__, "errno": getattr(error, "errno", None),
            "errname": getattr(error, "errname", None), "reason": reason.rstrip("\n"),
            "extra": redact(getattr(error, "extra", None))}


ResultCallback = Callable[[HostResult], None]


class FleetResult(Mapping[str, HostResult]):
    """host name -> HostResult, in inventory order."""

    def __init__(self, results: Mapping[str, HostResult], order: list[str] | None = None) -> None:
        names = order if order is not None else list(results)
        self._results = {name: results[name] for name in names if name in results}

    def __getitem__(self, host: str) -> HostResult:
        return self._results[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._results)

    def __len__(self) -> int:
        return len(self._results)

    def __repr__(self) -> str:
        counts = ", ".join(f"{status.value}={len(hosts)}" for status, hosts in self.by_status().items())
        return f"<FleetResult {len(self)} hosts: {counts}>"

    @property
    def ok(self) -> dict[str, HostResult]:
        return {name: r for name, r in self._results.items() if r.ok}

    @property
    def failed(self) -> dict[str, HostResult]:
        """Every host that did not succeed, whatever the reason."""
        return {name: r for name, r in self._results.items() if not r.ok}

    def by_status(self) -> dict[Status, list[str]]:
        grouped: dict[Status, list[str]] = {}
        for name, result in self._results.items():
            grouped.setdefault(result.status, []).append(name)
        return grouped

    def raise_on_error(self) -> FleetResult:
        """Raise the first host's error if any host failed; else return self."""
        for result in self._results.values():
            if result.error is not None:
                raise result.error
            if not result.ok:
                raise FleetError(f"{result.host}: {result.status.value}")
        return self
