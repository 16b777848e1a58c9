"""The fleet: one persistent HostSession per inventory host, and fan-out over them.

Every fleet feature is "map a session method over hosts, collect outcomes".
Two separate bounds: `max_connecting` caps connects and logins in progress
(TLS and logins are the expensive part), `forks` caps hosts being worked on.
A `deadline` bounds the whole operation: hosts not done by then are reported
as `timeout` and their greenlets are stopped (a job keeps running on its host).
The library never monkey-patches.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import gevent
from gevent.lock import BoundedSemaphore
from gevent.pool import Pool

from ..client.login import Credentials
from ..client.session import EventCallback, HostSession, ProgressCallback, Timeouts
from ..client.tls import TLSPolicy
from ..errors import CallTimeout, FleetError, InternalError
from ..inventory.load import HostSpec, Inventory, load_inventory
from ..local.rlimit import ensure_open_files
from .pipeline import PipelinedCall
from .results import FleetResult, HostResult, Status

log = logging.getLogger(__name__)

DEFAULT_FORKS = 100
# Connects happen inside the forks, so a cap below them only queues hosts
# (docs/performance.md §4). Each connect is a TCP + TLS handshake and a login on a
# different server.
DEFAULT_MAX_CONNECTING = 100

ResultCallback = Callable[[HostResult], None]
HostProgress = Callable[[str, dict[str, Any]], None]


def session_for(spec: HostSpec) -> HostSession:
    """A HostSession configured from an inventory entry (nothing is opened yet)."""
    return HostSession(
        spec.name, spec.uri, Credentials(spec.username, spec.password, spec.api_key),
        tls=TLSPolicy(spec.verify_tls, spec.ca_file, spec.tls_fingerprint),
        timeouts=Timeouts(connect=spec.connect_timeout, call=spec.timeout))


class Fleet:
    """Sessions to the hosts of an inventory; use as a context manager to close them all."""

    def __init__(self, inventory: Inventory, *, forks: int = DEFAULT_FORKS,
                 max_connecting: int = DEFAULT_MAX_CONNECTING,
                 session_factory: Callable[[HostSpec], HostSession] = session_for) -> None:
        if forks < 1 or max_connecting < 1:
            raise ValueError(f"forks and max_connecting must be 1 or more, not {forks} and {max_connecting}")
        self.inventory = inventory
        self.forks = forks
        self._connecting = BoundedSemaphore(max_connecting)
        self._factory = session_factory
        self._sessions: dict[str, HostSession] = {}
        self.last_result: FleetResult | None = None

    @classmethod
    def from_inventory(cls, source: Inventory | str | os.PathLike[str] | None = None, **options: Any) -> Fleet:
        """From an Inventory, a path, or the default location ($FLEETCLT_INVENTORY, ./inventory.yaml)."""
        inventory = source if isinstance(source, Inventory) else load_inventory(source)
        return cls(inventory, **options)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getitem__(self, name: str) -> HostSession:
        """The session of one host (created on first use, connected on first call)."""
        session = self._sessions.get(name)
        if session is None:
            session = self._sessions[name] = self._factory(self.inventory.hosts[name])
        return session

    def __repr__(self) -> str:
        return f"<Fleet {len(self.inventory.hosts)} hosts, {len(self._sessions)} sessions>"

    def close(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def select(self, hosts: str | Iterable[str] = "all", failed: Iterable[str] = ()) -> list[str]:
        """Host names matching a pattern, in inventory order."""
        return [spec.name for spec in self.inventory.select(hosts, failed=frozenset(failed))]

    def call(self, method: str, *params: Any, hosts: str | Iterable[str] = "all", job: bool = False,
             timeout: float | None = None, deadline: float | None = None,
             on_result: ResultCallback | None = None, on_progress: HostProgress | None = None,
             failed: Iterable[str] = ()) -> FleetResult:
        """Call `method` on every selected host in parallel; one HostResult per host.

        A plain call (no job) goes out pipelined to every connected host (see
        fleetclt.fleet.pipeline: no greenlet per host, so `forks` does not bound those);
        hosts still to connect take the greenlet-per-host path, bounded by `forks`.
        """
        def action(session: HostSession) -> Any:
            progress = _bind(on_progress, session.name)
            return session.call(method, *params, timeout=timeout, job=job, on_progress=progress)
        names = self.select(hosts, failed)
        if job:
            return self._run(names, action, deadline, on_result)
        return self._run(names, action, deadline, on_result,
                         lambda record: PipelinedCall(method, list(params), timeout, record))

    def run(self, action: Callable[[HostSession], Any], *, hosts: str | Iterable[str] = "all",
            deadline: float | None = None, on_result: ResultCallback | None = None,
            failed: Iterable[str] = ()) -> FleetResult:
        """Apply `action` to each selected host's session; the general form of `call`."""
        return self._run(self.select(hosts, failed), action, deadline, on_result)

    def _run(self, names: list[str], action: Callable[[HostSession], Any], deadline: float | None,
             on_result: ResultCallback | None,
             pipelined: Callable[[ResultCallback], PipelinedCall] | None = None) -> FleetResult:
        ensure_open_files(len(self._sessions) + sum(name not in self._sessions for name in names))
        results: dict[str, HostResult] = {}

        def record(result: HostResult) -> None:
            results[result.host] = result
            if on_result is not None:
                on_result(result)
        started = time.monotonic()
        fan = pipelined(record) if pipelined is not None else None
        slow = fan.send((name, self._sessions.get(name)) for name in names) if fan is not None else names
        pool = Pool(self.forks)
        overdue = self._drive_within(pool, slow, action, record, deadline)
        if fan is not None:
            fan.wait(deadline)
            left = None if deadline is None else max(0.0, deadline - (time.monotonic() - started))
            overdue = self._drive_within(pool, fan.again, action, record, left) or overdue
        if overdue:
            _mark_overdue(names, results, deadline, record)
        self.last_result = FleetResult(results, names)
        return self.last_result

    def subscribe(self, event: str, callback: EventCallback, hosts: str | Iterable[str] = "all") -> None:
        """Deliver `event` updates of every selected host to `callback` (see HostSession.subscribe)."""
        for name in self.select(hosts):
            self[name].subscribe(event, callback)

    def _drive_within(self, pool: Pool, names: list[str], action: Callable[[HostSession], Any],
                      record: ResultCallback, timeout: float | None) -> bool:
        """Work through `names` in the pool; True when `timeout` passed first (the rest is stopped)."""
        if not names:
            return False
        driver = gevent.spawn(self._drive, pool, names, action, record)
        driver.join(timeout=timeout)
        if driver.dead:
            return False
        driver.kill()
        pool.kill()
        return True

    def _drive(self, pool: Pool, names: list[str], action: Callable[[HostSession], Any],
               record: ResultCallback) -> None:
        for result in pool.imap_unordered(lambda name: self._attempt(name, action), names):
            record(result)

    def connected(self, name: str) -> HostSession:
        """The session of `name`, connected and logged in, with at most `max_connecting` at once."""
        session = self[name]
        if not session.connected:
            with self._connecting:
                session.connect()
        return session

    def _attempt(self, name: str, action: Callable[[HostSession], Any]) -> HostResult:
        started = time.monotonic()
        try:
            value = action(self.connected(name))
        except FleetError as exc:
            return HostResult.from_error(name, exc, time.monotonic() - started)
        except Exception as exc:  # a bug on one host must not sink the whole fan-out
            log.exception("%s: unexpected error", name)
            return HostResult(name, Status.FAILED, error=InternalError(exc, name), elapsed=time.monotonic() - started)
        return HostResult(name, Status.OK, value, elapsed=time.monotonic() - started)


def _bind(on_progress: HostProgress | None, host: str) -> ProgressCallback | None:
    if on_progress is None:
        return None
    return lambda job: on_progress(host, job)


def _mark_overdue(names: list[str], results: Mapping[str, HostResult], deadline: float | None,
                  record: ResultCallback) -> None:
    for name in names:
        if name not in results:
            error = CallTimeout(f"not done when the {deadline:g} s deadline passed", name)
            record(HostResult(name, Status.TIMEOUT, error=error, elapsed=deadline or 0.0))
