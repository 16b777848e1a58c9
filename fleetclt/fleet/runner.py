"""How a fan-out is driven: the Runner seam, and the gevent pool runner every Fleet uses by default.

A Fleet says *what* to do on which hosts (a FanOut); a runner decides *how*:
how many hosts at once, how many connects at once, whether a plain call goes
out pipelined, and what the deadline stops. Each strategy then reads in one
place, and another one (a different pool, a test's recording runner) can be
handed to `Fleet(inventory, runner=...)`. Runners run in the fleet's hub.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Pool

from ..client.session import HostSession
from ..errors import CallTimeout
from .pipeline import PipelinedCall
from .results import HostResult, ResultCallback, Status

DEFAULT_FORKS = 100
# Connects happen inside the forks, so a cap below them only queues hosts
# (docs/performance.md §4). Each connect is a TCP + TLS handshake and a login on a
# different server.
DEFAULT_MAX_CONNECTING = 100


@dataclass(frozen=True)
class PlainCall:
    """The same plain call (no job) on every host: a runner may pipeline it instead of `attempt`."""

    method: str
    params: list[Any]
    timeout: float | None


@dataclass
class FanOut:
    """One operation over `names`, as a Fleet hands it to its runner.

    `attempt(name)` is the full path for one host (connect if needed, act,
    turn any error into a HostResult); `live(name)` is that host's session if
    one exists, for runners that use open connections directly.
    """

    names: list[str]
    attempt: Callable[[str], HostResult]
    live: Callable[[str], HostSession | None]
    deadline: float | None = None
    on_result: ResultCallback | None = None
    plain_call: PlainCall | None = None
    results: dict[str, HostResult] = field(default_factory=dict)

    def record(self, result: HostResult) -> None:
        self.results[result.host] = result
        if self.on_result is not None:
            self.on_result(result)

    def expire(self) -> None:
        """Every host with no result yet times out: the deadline passed."""
        for name in self.names:
            if name not in self.results:
                error = CallTimeout(f"not done when the {self.deadline:g} s deadline passed", name)
                self.record(HostResult(name, Status.TIMEOUT, error=error, elapsed=self.deadline or 0.0))


class Runner(Protocol):
    """Drives fan-outs in the fleet's hub; `forks` is how many hosts it works on at once."""

    forks: int

    def run(self, fan_out: FanOut) -> None:
        """Record exactly one result per name of `fan_out` before returning."""

    def connect(self, session: HostSession, within: float | None = None) -> None:
        """Connect and log in `session`, within the runner's bound on connects at once.

        `within`: the host's time left (call timeout, deadline); a login budget that
        allows no login in that time fails it at once as throttled.
        """


class GeventRunner:
    """A greenlet pool of `forks`, at most `max_connecting` connects at once, plain calls pipelined.

    A plain call goes out from one greenlet to every connected host (see
    pipeline.py: no greenlet per host, so `forks` does not bound those); hosts
    still to connect, jobs and actions take a pool greenlet each. A deadline
    stops what is left and reports it as `timeout` (a job keeps running on its host).
    """

    def __init__(self, forks: int = DEFAULT_FORKS, max_connecting: int = DEFAULT_MAX_CONNECTING) -> None:
        if forks < 1 or max_connecting < 1:
            raise ValueError(f"forks and max_connecting must be 1 or more, not {forks} and {max_connecting}")
        self.forks, self.max_connecting = forks, max_connecting
        self._connecting = BoundedSemaphore(max_connecting)

    def __repr__(self) -> str:
        return f"GeventRunner(forks={self.forks}, max_connecting={self.max_connecting})"

    def connect(self, session: HostSession, within: float | None = None) -> None:
        with self._connecting:
            session.connect(within)

    def run(self, fan_out: FanOut) -> None:
        pool, started = Pool(self.forks), time.monotonic()
        if fan_out.plain_call is None:
            overdue = _drive_within(pool, fan_out.names, fan_out, fan_out.deadline)
        else:
            overdue = self._pipelined(pool, fan_out, fan_out.plain_call, started)
        if overdue:
            fan_out.expire()

    def _pipelined(self, pool: Pool, fan_out: FanOut, call: PlainCall, started: float) -> bool:
        """Send to every live session; the rest, then those whose server ended the session, go through the pool."""
        fan = PipelinedCall(call.method, call.params, call.timeout, fan_out.record)
        slow = fan.send((name, fan_out.live(name)) for name in fan_out.names)
        overdue = _drive_within(pool, slow, fan_out, fan_out.deadline)
        fan.wait(fan_out.deadline)
        left = None if fan_out.deadline is None else max(0.0, fan_out.deadline - (time.monotonic() - started))
        return _drive_within(pool, fan.again, fan_out, left) or overdue


def _drive_within(pool: Pool, names: list[str], fan_out: FanOut, timeout: float | None) -> bool:
    """Work through `names` in the pool; True when `timeout` passed first (the rest is stopped)."""
    if not names:
        return False
    driver = gevent.spawn(_drive, pool, names, fan_out)
    driver.join(timeout=timeout)
    if driver.dead:
        return False
    driver.kill()
    pool.kill()
    return True


def _drive(pool: Pool, names: list[str], fan_out: FanOut) -> None:
    for result in pool.imap_unordered(fan_out.attempt, names):
        fan_out.record(result)
