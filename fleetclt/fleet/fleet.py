"""The fleet: one persistent HostSession per inventory host, and fan-out over them.

Every fleet feature is "map a session method over hosts, collect outcomes".
How the hosts are worked through (pool size, connects at once, pipelining, the
deadline) is the runner's (runner.py); where the greenlets run, in the
caller's gevent hub or in a hub thread of the fleet's own, is hub.py's.
The library never monkey-patches.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ..client.login import Credentials
from ..client.session import EndCallback, EventCallback, HostSession, ProgressCallback, Timeouts
from ..client.tls import TLSPolicy
from ..errors import AuthError, FleetError, InternalError, UnknownHostError
from ..inventory.load import HostSpec, Inventory, load_inventory
from ..local.rlimit import ensure_open_files
from .backup import backup as _backup
from .files import download as _download
from .hub import HubMode, make_hub
from .results import FleetResult, HostResult, ResultCallback, Status
from .runner import DEFAULT_FORKS, DEFAULT_MAX_CONNECTING, FanOut, GeventRunner, PlainCall, Runner
from .upload import upload as _upload

log = logging.getLogger(__name__)

HostProgress = Callable[[str, dict[str, Any]], None]
T = TypeVar("T")


def session_for(spec: HostSpec) -> HostSession:
    """A HostSession configured from an inventory entry (nothing is opened yet); a host that
    could not log in (no credential, an unreadable one) is refused here, before connecting."""
    problem = spec.credential_problem()
    if problem:
        raise AuthError(problem, spec.name)
    return HostSession(
        spec.name, spec.uri, Credentials(spec.username, spec.password, spec.api_key,
                                          allow_plain_api_key=spec.allow_plain_api_key, otp_secret=spec.otp_secret),
        tls=TLSPolicy(spec.verify_tls, spec.ca_file, spec.tls_fingerprint),
        timeouts=Timeouts(connect=spec.connect_timeout, call=spec.timeout), controllers=spec.controllers)


class Fleet:
    """Sessions to the hosts of an inventory; use as a context manager to close them all.

    Usable from plain Python and from gevent programs alike; `hub` picks how:

    - ``"auto"`` (default): ``"inline"`` when the thread making the Fleet already
      has a gevent hub (a gevent program, a simulator, a spawned greenlet), else
      ``"thread"``. A script that never touched gevent gets ``"thread"``.
    - ``"thread"``: the fleet runs its own gevent hub in a daemon thread; every
      method is handed to it and blocks only the calling thread, so any thread
      may call, and ``time.sleep`` between calls does not stop keepalives or
      drop detection. Callbacks (`on_result`, `on_progress`, `subscribe`'s,
      `run`'s action) run in that hub thread. ``fleet[name]`` gives a proxy
      whose methods run there too. ``close()`` ends the thread.
    - ``"inline"``: greenlets run in the caller's hub, as any gevent code; only
      greenlets of the thread that made the fleet may use it (another thread
      gets a FleetError at once).

    A closed Fleet refuses every call with a FleetError. `forks` and
    `max_connecting` build the default GeventRunner; pass `runner=` for another.
    """

    def __init__(self, inventory: Inventory, *, forks: int | None = None, max_connecting: int | None = None,
                 runner: Runner | None = None, hub: HubMode = "auto",
                 session_factory: Callable[[HostSpec], HostSession] = session_for) -> None:
        if runner is not None and (forks is not None or max_connecting is not None):
            raise ValueError("forks and max_connecting belong to the runner: give them to it, not beside it")
        self.runner: Runner = runner or GeventRunner(
            DEFAULT_FORKS if forks is None else forks,
            DEFAULT_MAX_CONNECTING if max_connecting is None else max_connecting)
        self.inventory = inventory
        self._factory = session_factory
        self._sessions: dict[str, HostSession] = {}
        self.last_result: FleetResult | None = None
        self._hub = make_hub(hub)

    @classmethod
    def from_inventory(cls, source: Inventory | str | os.PathLike[str] | None = None, **options: Any) -> Fleet:
        """From an Inventory, a path, or the default location ($FLEETCLT_INVENTORY, ./inventory.yaml)."""
        inventory = source if isinstance(source, Inventory) else load_inventory(source)
        return cls(inventory, **options)

    @property
    def forks(self) -> int:
        """How many hosts the runner works on at once."""
        return self.runner.forks

    @property
    def hub_mode(self) -> str:
        """'inline' or 'thread': where this fleet's greenlets run (see the class docstring)."""
        return self._hub.mode

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __getitem__(self, name: str) -> HostSession:
        """The session of one host (created on first use, connected on first call)."""
        return self._hub.share(self._hub.run(self._session, name))

    def __repr__(self) -> str:
        return f"<Fleet {len(self.inventory.hosts)} hosts, {len(self._sessions)} sessions, {self.hub_mode}>"

    # Files move over HTTP beside the sessions (docs/files.md); each function takes the
    # fleet first, so it is this class's method as it is: fleet.download(...), ...
    download = _download
    backup = _backup
    upload = _upload

    def close(self) -> None:
        """Close every session; in thread mode also stop the hub thread. A second close does nothing."""
        if self._hub.closed:
            return
        self._hub.run(self._close_sessions)
        self._hub.close()

    def in_hub(self, func: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`func(*args, **kwargs)` where this fleet's greenlets run, and its result.

        For work built of many fleet and session calls with gevent primitives of its
        own (a rollout): in thread mode it then runs in the hub thread as one unit,
        instead of handing every call over; inline it simply runs.
        """
        return self._hub.run(func, *args, **kwargs)

    def select(self, hosts: str | Iterable[str] = "all", failed: Iterable[str] = ()) -> list[str]:
        """Host names matching a pattern, in inventory order."""
        return [spec.name for spec in self.inventory.select(hosts, failed=frozenset(failed))]

    def call(self, method: str, *params: Any, hosts: str | Iterable[str] = "all", job: bool = False,
             timeout: float | None = None, deadline: float | None = None,
             on_result: ResultCallback | None = None, on_progress: HostProgress | None = None,
             failed: Iterable[str] = ()) -> FleetResult:
        """Call `method` on every selected host in parallel; one HostResult per host.

        A plain call (no job) may go out pipelined to the connected hosts (see runner.py).
        """
        def action(session: HostSession) -> Any:
            progress = _bind(on_progress, session.name)
            return session.call(method, *params, timeout=timeout, job=job, on_progress=progress)
        plain = None if job else PlainCall(method, list(params), timeout)
        return self._hub.run(self._run, self.select(hosts, failed), action, deadline, on_result, plain, timeout)

    def run(self, action: Callable[[HostSession], Any], *, hosts: str | Iterable[str] = "all",
            deadline: float | None = None, on_result: ResultCallback | None = None,
            failed: Iterable[str] = ()) -> FleetResult:
        """Apply `action` to each selected host's session; the general form of `call`."""
        return self._hub.run(self._run, self.select(hosts, failed), action, deadline, on_result)

    def subscribe(self, event: str, callback: EventCallback, hosts: str | Iterable[str] = "all",
                  on_end: EndCallback | None = None) -> FleetResult:
        """Deliver `event` updates of every selected host to `callback` (see HostSession.subscribe).

        Connects the hosts not connected yet (within the runner's bound on connects),
        so events flow with no other call; the result says which hosts could not be
        reached or refused the subscription (`failed`). `on_end` hears when a host's
        server ends it.
        """
        return self._hub.run(self._subscribe, event, callback, self.select(hosts), on_end)

    def connected(self, name: str) -> HostSession:
        """The session of `name`, connected and logged in, within the runner's bound on connects."""
        return self._hub.share(self._hub.run(self._connected, name))

    # -- in the hub ------------------------------------------------------------------
    def _session(self, name: str) -> HostSession:
        session = self._sessions.get(name)
        if session is None:
            spec = self.inventory.hosts.get(name)
            if spec is None:
                raise UnknownHostError(name, list(self.inventory.hosts))
            session = self._sessions[name] = self._factory(spec)
        return session

    def _connected(self, name: str, within: float | None = None) -> HostSession:
        session = self._session(name)
        if not session.connected:
            self.runner.connect(session, within)
        return session

    def _close_sessions(self) -> None:
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    def _subscribe(self, event: str, callback: EventCallback, names: list[str],
                   on_end: EndCallback | None) -> FleetResult:
        return self._run(names, lambda session: session.subscribe(event, callback, on_end), None, None)

    def _run(self, names: list[str], action: Callable[[HostSession], Any], deadline: float | None,
             on_result: ResultCallback | None, plain_call: PlainCall | None = None,
             timeout: float | None = None) -> FleetResult:
        ensure_open_files(len(self._sessions) + sum(name not in self._sessions for name in names))
        bound = _TimeLeft(timeout, deadline)
        fan_out = FanOut(names, lambda name: self._attempt(name, action, bound()), self._sessions.get,
                         deadline, on_result, plain_call)
        self.runner.run(fan_out)
        self.last_result = FleetResult(fan_out.results, names)
        return self.last_result

    def _attempt(self, name: str, action: Callable[[HostSession], Any], within: float | None) -> HostResult:
        started = time.monotonic()
        try:
            value = action(self._connected(name, within))
        except FleetError as exc:
            return HostResult.from_error(name, exc, time.monotonic() - started)
        except Exception as exc:  # a bug on one host must not sink the whole fan-out
            log.exception("%s: unexpected error", name)
            return HostResult(name, Status.FAILED, error=InternalError(exc, name), elapsed=time.monotonic() - started)
        return HostResult(name, Status.OK, value, elapsed=time.monotonic() - started)


class _TimeLeft:
    """A host's time left in a fan-out: the call's timeout, or what the deadline leaves if that is less."""

    def __init__(self, timeout: float | None, deadline: float | None) -> None:
        self._timeout = timeout
        self._end = None if deadline is None else time.monotonic() + deadline

    def __call__(self) -> float | None:
        if self._end is None:
            return self._timeout
        left = max(0.0, self._end - time.monotonic())
        return left if self._timeout is None else min(self._timeout, left)


def _bind(on_progress: HostProgress | None, host: str) -> ProgressCallback | None:
    if on_progress is None:
        return None
    return lambda job: on_progress(host, job)
