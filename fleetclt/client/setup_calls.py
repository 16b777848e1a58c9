"""The calls a new connection makes before it is handed out: sent together, waited for together."""
from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from gevent.event import AsyncResult

from ..errors import CallTimeout, RemoteCallError
from .link import Link, PendingCall


class SetUpCalls:
    """Set-up calls sent without waiting, then waited for together, each within `timeout` of its send.

    No greenlet each: a new greenlet costs as much as the call it would wait for
    (docs/performance.md §2).
    If the link's window is full (a window smaller than the set-up), a call
    waits for a slot instead.
    """

    def __init__(self, link: Link, timeout: float) -> None:
        self._link, self._timeout = link, timeout
        self._sent: list[tuple[str, PendingCall, AsyncResult, float, bool]] = []

    def call(self, method: str, params: list[Any]) -> AsyncResult:
        """Its result, ready once `wait` has returned."""
        return self._send(method, self._link.start_call, self._link.call, False, method, params)

    def subscribe(self, event: str, refusable: bool = False) -> AsyncResult:
        """A refusable subscription's refusal (RemoteCallError) stays in its outcome: `wait` does not raise it."""
        return self._send(f"subscribe {event}", self._link.start_subscribe, self._link.subscribe, refusable, event)

    def _send(self, what: str, start: Callable[..., PendingCall | None], call: Callable[..., Any],
              refusable: bool, *args: Any) -> AsyncResult:
        outcome = AsyncResult()
        pending = start(*args, partial(_settle_into, outcome))
        if pending is None:  # a dead link raises its error here; a full window waits for a slot
            try:
                outcome.set(call(*args, self._timeout))
            except RemoteCallError as exc:
                if not refusable:
                    raise
                outcome.set_exception(exc)
        else:
            self._sent.append((what, pending, outcome, time.monotonic() + self._timeout, refusable))
        return outcome

    def wait(self) -> None:
        """Every reply, in the order sent; the first failure is raised (a refusal only when not refusable)."""
        for what, pending, outcome, deadline, refusable in self._sent:
            outcome.wait(max(0.0, deadline - time.monotonic()))
            if not outcome.ready():
                pending.cancel(CallTimeout(f"{what}: no reply within {self._timeout:g} s", self._link.host_name))
            if not (refusable and isinstance(outcome.exception, RemoteCallError)):
                outcome.get(block=False)


def _settle_into(outcome: AsyncResult, value: Any, error: BaseException | None) -> None:
    if error is None:
        outcome.set(value)
    else:
        outcome.set_exception(error)
