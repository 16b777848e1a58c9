"""Pipelined fan-out: one plain call sent to many connected hosts from a single greenlet.

Why: a greenlet, a timer and a semaphore wait per host cost about as much CPU
as the call itself (docs/performance.md §2). Here every
request goes out from the calling greenlet, each reply settles its host's
result inline in that connection's reader greenlet, and one wait covers the
round. Hosts that cannot take a call right now (not connected yet, window
full, dead link), and hosts whose server ended the session (ENOTAUTHENTICATED:
the session logs in again on its own path), are handed back for the ordinary
greenlet-per-host path.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from gevent.event import Event

from ..client.link import PendingCall
from ..client.session import HostSession
from ..errors import CallTimeout, FleetError, InternalError
from ..protocol.jsonrpc import is_not_authenticated
from .results import HostResult, ResultCallback, Status

log = logging.getLogger(__name__)


class PipelinedCall:
    """`method(*params)` on many sessions at once; results go to `record` as replies arrive."""

    def __init__(self, method: str, params: list[Any], timeout: float | None, record: ResultCallback) -> None:
        self.method, self.params, self.timeout = method, params, timeout
        self._record = record
        self._started = time.monotonic()
        self._waiting: dict[str, tuple[PendingCall | None, float]] = {}
        self._all_settled = Event()
        self._all_settled.set()
        self.again: list[str] = []  # refused unrun because the session ended: retry through the session

    def send(self, sessions: Iterable[tuple[str, HostSession | None]]) -> list[str]:
        """Start the call on every live session; returns the names left for the slow path."""
        return [name for name, session in sessions if session is None or not self._start(name, session)]

    def wait(self, deadline: float | None = None) -> None:
        """Until every reply is in; calls past their timeout, or all at `deadline`, time out."""
        end = None if deadline is None else self._started + deadline
        while self._waiting:
            expiries = [expires for _, expires in self._waiting.values()]
            until = min(expiries + ([end] if end is not None else []))
            if self._all_settled.wait(max(0.0, until - time.monotonic())):
                return
            self._expire(time.monotonic(), end)

    def _start(self, name: str, session: HostSession) -> bool:
        expires = self._started + (session.timeouts.call if self.timeout is None else self.timeout)
        self._waiting[name] = (None, expires)
        self._all_settled.clear()
        pending = session.start_call(self.method, self.params, lambda value, error: self._settle(name, value, error))
        if pending is None:
            self._forget(name)
            return False
        if name in self._waiting:  # not settled already (a send that failed settles at once)
            self._waiting[name] = (pending, expires)
        return True

    def _settle(self, name: str, value: Any, error: BaseException | None) -> None:
        """Runs in the link's reader greenlet: it must never raise."""
        self._forget(name)
        if error is not None and is_not_authenticated(error):
            self.again.append(name)
            return
        try:
            self._record(self._result(name, value, error))
        except Exception:
            log.exception("%s: recording a result failed", name)

    def _result(self, name: str, value: Any, error: BaseException | None) -> HostResult:
        elapsed = time.monotonic() - self._started
        if error is None:
            return HostResult(name, Status.OK, value, elapsed=elapsed)
        if isinstance(error, FleetError):
            return HostResult.from_error(name, error, elapsed)
        return HostResult(name, Status.FAILED, error=InternalError(error, name), elapsed=elapsed)

    def _forget(self, name: str) -> None:
        self._waiting.pop(name, None)
        if not self._waiting:
            self._all_settled.set()

    def _expire(self, now: float, end: float | None) -> None:
        overall = end is not None and now >= end
        for name, (pending, expires) in list(self._waiting.items()):
            if overall or now >= expires:
                reason = (f"not done when the {end - self._started:g} s deadline passed" if overall and end
                          else f"{self.method}: no reply within {expires - self._started:g} s")
                if pending is not None:
                    pending.cancel(CallTimeout(reason, name))  # settles it: recorded as timeout
                else:
                    self._settle(name, None, CallTimeout(reason, name))
