"""One host, complete on its own: a persistent, authenticated, throttled session.

Never monkey-patches; never does I/O in its constructor.

    with HostSession("nas01", "wss://nas01/api/current", Credentials("admin", password)) as nas:
        nas.call("system.info")
        nas.call("pool.dataset.lock", "tank/secure", job=True, on_progress=print)

The first call connects: websocket (TLS pin checked before anything is sent),
login (through the auth throttle) with `system.boot_id` beside it, the caller's
subscriptions, and re-attachment of jobs being waited for. From the first job
on, every connection also gets `core.set_options` (legacy job replies: the id
comes back at once and no call slot is held while a job runs) and a
`core.get_jobs` subscription (jobs are followed by events, never polled); until
then a plain call connects in one round trip after the upgrade. A dropped
connection is reopened on the next need with capped, jittered backoff.
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from ..errors import (
    AuthError,
    CallTimeout,
    ConnectionLost,
    FleetError,
    HandshakeError,
    NotAJobError,
    ProtocolError,
    RemoteCallError,
    SessionError,
    StandbyError,
    UnreachableError,
    without_host,
)
from ..protocol.ddp import DdpDialect
from ..protocol.endpoint import API_PATH, LEGACY_PATH, Endpoint
from ..protocol.jobs import JOB_EVENT
from ..protocol.jsonrpc import CollectionUpdate, JsonRpcDialect, is_int, is_not_authenticated
from ..protocol.jsonrpc import Event as ProtocolEvent
from ..protocol.versions import Version, is_renamed, method_for, parse_version
from .job_watch import Call, JobWatch, ProgressCallback
from .link import Link, PendingCall, Settle
from .login import Credentials, log_in, refuse_insecure_key
from .throttle import AuthThrottle, Backoff
from .tls import TLSPolicy
from .transport import open_websocket

__all__ = ["EventCallback", "HostSession", "ProgressCallback", "SessionStats", "Timeouts"]

log = logging.getLogger(__name__)

OLD_SERVER_STATUSES = frozenset({301, 302, 303, 307, 308, 404})
EventCallback = Callable[[CollectionUpdate], None]


@dataclass(frozen=True)
class Timeouts:
    """Phase timeouts in seconds; None means no limit (only where that is safe)."""

    connect: float = 10.0      # TCP, TLS, upgrade, and each set-up call after it
    login: float = 20.0        # refusals answer late: 1-5 s, or up to 10 s when rate limited
    call: float = 60.0
    job: float | None = None
    job_idle: float | None = 600.0
    reconnect_attempts: int = 5
    keepalive: float | None = 25.0
    ping: float = 10.0


@dataclass
class SessionStats:
    """What a session did, for tests, benchmarks and the soak report."""

    connects: int = 0
    logins: int = 0
    drops: int = 0
    restarts_seen: int = 0
    jobs_reattached: int = 0


class HostSession:
    """A persistent session to one TrueNAS host; safe to share between greenlets."""

    def __init__(self, name: str, uri: str, credentials: Credentials | None = None, *,
                 tls: TLSPolicy | None = None, timeouts: Timeouts | None = None,
                 throttle: AuthThrottle | None = None, backoff: Backoff | None = None,
                 window: int = 10, controllers: Sequence[str] = ()) -> None:
        self.name = name
        self._endpoint = Endpoint.parse(uri)
        self._probe_path = self._endpoint.target in ("", "/")
        # An HA pair as one host: `uri` and the other controllers' URIs, tried in turn (docs/protocol.md §5).
        self._controllers = [self._endpoint] + [Endpoint.parse(other) for other in controllers if other != uri]
        self._controller = 0  # the one in use
        self._credentials = credentials or Credentials()
        self._tls = tls or TLSPolicy()
        self.timeouts = timeouts or Timeouts()
        self._throttle = throttle or AuthThrottle(sleep=gevent.sleep)
        self._backoff = backoff or Backoff()
        self._window = window
        self._link: Link | None = None
        self._connect_lock = Semaphore()
        self._jobs = JobWatch(name)
        self._subscribers: dict[str, list[EventCallback]] = {}
        self.boot_id: str | None = None
        self.stats = SessionStats()
        self._closed = False
        self._auth_failure: AuthError | None = None
        self._supervisor: gevent.Greenlet | None = None
        self._wake_supervisor = Event()
        self._watch_jobs = False  # job events are subscribed from the first job on
        self._job_events_on: Link | None = None
        self._job_events_lock = Semaphore()
        self._version: tuple[str | None, Version] | None = None  # (boot id, version) it was asked under

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "idle"
        return f"<HostSession {self.name} {self.uri} {state}>"

    def __enter__(self) -> HostSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def uri(self) -> str:
        return self._endpoint.uri

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.dead.is_set()

    @property
    def in_flight(self) -> int:
        """Calls on the wire now, waiting for their replies."""
        link = self._live_link()
        return 0 if link is None else link.in_flight

    def start_call(self, method: str, params: list[Any], settle: Settle) -> PendingCall | None:
        """Send a call on the open connection without waiting (pipelined fan-out).

        `settle(value, error)` runs in the connection's reader when the reply
        comes. None, with nothing sent, when a call would have to connect or
        wait for a slot: use `call` then. Nothing is retried on this path.
        """
        link = self._live_link()
        if link is None:
            return None
        if is_renamed(method):
            version = self._known_version()
            if version is None:
                return None  # the slow path asks the host's version first
            method = method_for(method, params, version)
        return link.start_call(method, params, settle)

    def _live_link(self) -> Link | None:
        link = self._link
        return link if link is not None and not link.dead.is_set() else None

    @property
    def dialect(self) -> str:
        """'ddp' for the legacy /websocket endpoint, else 'jsonrpc'."""
        return "ddp" if self._endpoint.is_legacy else "jsonrpc"

    # -- public API --------------------------------------------------------------
    def connect(self) -> None:
        """Open and authenticate now instead of on the first call."""
        self._ensure_link()

    def call(self, method: str, *params: Any, timeout: float | None = None, job: bool = False,
             on_progress: ProgressCallback | None = None, retry_safe: bool = False) -> Any:
        """Call `method`; with job=True wait for the job it starts and return its result.

        A call in flight when the connection drops fails with ConnectionLost,
        unless `retry_safe` says it may run twice (reads), then it is sent again.
        """
        if job:
            self._follow_jobs()
        method = self.method_for(method, list(params))
        result = self._call(method, list(params), timeout, retry_safe)
        if not job:
            return result
        if not is_int(result):
            raise NotAJobError.for_reply(method, result, self.name)
        return self._wait_job(result, on_progress, None, None)  # job events are on already

    def method_for(self, method: str, params: list[Any]) -> str:
        """The name this host has for `method` (update.update is update.run from 25.10, docs/protocol.md §14).

        Asks the host's version first when the name depends on it.
        """
        return method_for(method, params, self.host_version()) if is_renamed(method) else method

    def host_version(self) -> Version:
        """The host's TrueNAS version, e.g. (25, 10, 1): asked once per boot of its middleware."""
        self._ensure_link()  # connected, the boot id is the current one
        version = self._known_version()
        if version is None:
            reply = self._call("system.version_short", [], None, retry_safe=True)
            version = parse_version(str(reply))
            if version is None:
                raise ProtocolError(f"system.version_short returned no version: {reply!r:.60}", self.name)
            self._version = (self.boot_id, version)
        return version

    def _known_version(self) -> Version | None:
        """The version learned under the current boot id; None when not asked yet or the host rebooted."""
        known = self._version
        return known[1] if known is not None and known[0] == self.boot_id else None

    def wait_job(self, job_id: int, *, on_progress: ProgressCallback | None = None,
                 timeout: float | None = None, idle_timeout: float | None = None) -> Any:
        """Follow a job by its events until it ends; re-attach by id after a reconnect."""
        self._follow_jobs()
        return self._wait_job(job_id, on_progress, timeout, idle_timeout)

    def _wait_job(self, job_id: int, on_progress: ProgressCallback | None, timeout: float | None,
                  idle_timeout: float | None) -> Any:
        timeout = self.timeouts.job if timeout is None else timeout
        idle = self.timeouts.job_idle if idle_timeout is None else idle_timeout
        with gevent.Timeout(timeout, CallTimeout(f"job {job_id} did not end within {timeout} s",
                                                 self.name) if timeout else None):
            return self._jobs.wait(job_id, self._live_call, idle, on_progress)

    def abort_job(self, job_id: int) -> None:
        self.call("core.job_abort", job_id)

    def subscribe(self, event: str, callback: EventCallback) -> None:
        """Receive `event` updates; the subscription survives reconnects."""
        first = event not in self._subscribers
        self._subscribers.setdefault(event, []).append(callback)
        if event == JOB_EVENT:
            self._watch_jobs = True
            if self.connected:
                self._follow_jobs()
        elif first and self.connected:
            assert self._link is not None
            self._link.subscribe(event, self.timeouts.call)

    def close(self) -> None:
        """Log out by closing the socket; returns once keepalive and reconnects have stopped."""
        self._closed = True
        self._wake_supervisor.set()
        link, self._link = self._link, None
        if link is not None:
            link.close()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not gevent.getcurrent():
            supervisor.kill(block=True, timeout=1.0)

    # -- calls -----------------------------------------------------------------------
    def _call(self, method: str, params: list[Any], timeout: float | None, retry_safe: bool) -> Any:
        timeout = self.timeouts.call if timeout is None else timeout
        for attempt in range(2):
            link = self._ensure_link()
            try:
                return link.call(method, params, timeout)
            except ConnectionLost:
                if not retry_safe or attempt:
                    raise
            except RemoteCallError as exc:
                if attempt or not (is_not_authenticated(exc) and self.stats.logins):
                    raise
                # The server ended our session (expiry, logout elsewhere) and refused the call
                # unrun: open a fresh, logged-in connection the usual way, then send it again.
                link.close(ConnectionLost("the server ended the session", self.name))
        raise AssertionError("unreachable")

    def _live_call(self) -> Call:
        """A call function on a live link (reconnecting if needed), for the job watch."""
        return self._call_on(self._ensure_link())

    def _call_on(self, link: Link) -> Call:
        return lambda method, params: link.call(method, params, self.timeouts.call)

    # -- events --------------------------------------------------------------------
    def _on_down(self, error: SessionError) -> None:
        self.stats.drops += 0 if self._closed else 1
        self._jobs.wake_all()

    def _on_event(self, event: ProtocolEvent) -> None:
        if not isinstance(event, CollectionUpdate):
            return
        if event.collection == JOB_EVENT:
            self._jobs.feed(event)
        for callback in self._subscribers.get(event.collection, []):
            self._run_callback(callback, event)

    def _run_callback(self, callback: EventCallback, event: CollectionUpdate) -> None:
        try:
            callback(event)
        except Exception:  # a subscriber's bug must not kill the connection's reader
            log.exception("%s: subscriber for %s failed", self.name, event.collection)

    # -- connecting ------------------------------------------------------------------
    def _ensure_link(self) -> Link:
        link = self._link
        if link is not None and not link.dead.is_set():
            return link
        if self._closed:
            raise ConnectionLost("session is closed", self.name)
        if self._auth_failure is not None:
            raise self._auth_failure  # a refused credential is not tried again by this session
        with self._connect_lock:
            if self._link is None or self._link.dead.is_set():
                self._refuse_insecure_key()
                self._link = self._reconnect()
                self._start_supervisor()
                self._wake_supervisor.set()
            return self._link

    def _reconnect(self) -> Link:
        """Open a link; after a drop, retry with jittered backoff (auth failures never retry)."""
        first = self.stats.connects == 0
        attempts = 1 if first else self.timeouts.reconnect_attempts
        for attempt in range(attempts):
            try:
                return self._open_controller()
            except (UnreachableError, ConnectionLost) as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = self._backoff.delay(attempt)
                log.info("%s: reconnect failed (%s); next try in %.1f s", self.name, exc, delay)
                gevent.sleep(delay)
        raise AssertionError("unreachable")

    def _open_controller(self) -> Link:
        """Open a link to the controller in use; a standby or unreachable one hands over to the next."""
        for _ in self._controllers[1:]:
            try:
                return self._open()
            except (StandbyError, UnreachableError) as exc:
                self._controller = (self._controller + 1) % len(self._controllers)
                following = self._endpoint = self._controllers[self._controller]
                self._probe_path = following.target in ("", "/")
                self._refuse_insecure_key()
                log.info("%s: %s; trying the controller at %s", self.name, without_host(exc), following.uri)
        return self._open()

    def _open(self) -> Link:
        ws, dialect = self._open_websocket()
        link = Link(self.name, ws, dialect, self._on_event, self._on_down, self._window)
        try:
            link.handshake(self.timeouts.connect)
            self._set_up(link)
        except BaseException:
            link.close()
            raise
        self.stats.connects += 1
        return link

    def _open_websocket(self) -> tuple[Any, Any]:
        endpoint = self._endpoint.with_path(API_PATH) if self._probe_path else self._endpoint
        try:
            ws = open_websocket(self.name, endpoint, self._tls, self.timeouts.connect)
        except HandshakeError as exc:
            if endpoint.is_versioned and exc.status in OLD_SERVER_STATUSES:
                raise HandshakeError(f"{without_host(exc)}: the host does not serve {endpoint.target}; a host serves "
                                     "API versions up to its own (GET /api/versions lists them)",
                                     self.name, exc.status, exc.location) from None
            if not (self._probe_path and exc.status in OLD_SERVER_STATUSES):
                raise
            endpoint = self._endpoint.with_path(LEGACY_PATH)  # a host older than 25.04
            ws = open_websocket(self.name, endpoint, self._tls, self.timeouts.connect)
        self._endpoint, self._probe_path = endpoint, False
        dialect_class = DdpDialect if endpoint.is_legacy else JsonRpcDialect
        return ws, dialect_class(self.name)

    def _set_up(self, link: Link) -> None:
        """The boot id (it needs no login) goes out with the login; subscriptions follow it.

        A session that has not followed a job yet subscribes to no job events, so a
        plain call connects in one round trip after the upgrade instead of two.
        """
        steps = _SetUpCalls(link, self.timeouts.connect)
        boot_id = steps.call("system.boot_id", [])
        self._login(link)
        watch_jobs = self._watch_jobs  # once: a first job may start meanwhile and subscribes itself
        if watch_jobs:
            self._subscribe_job_events(link, steps)
        for event in self._subscribers:
            if event != JOB_EVENT:
                steps.subscribe(event)
        steps.wait()
        if watch_jobs:
            self._job_events_on = link
        self._note_boot(boot_id.get())
        self.stats.jobs_reattached += self._jobs.reattach(self._call_on(link))

    def _follow_jobs(self) -> None:
        """Job events from now on, on this connection and every later one (before a job starts)."""
        self._watch_jobs = True
        with self._job_events_lock:
            link = self._ensure_link()  # a reconnect here subscribes in _set_up
            if self._job_events_on is not link:
                steps = _SetUpCalls(link, self.timeouts.connect)
                self._subscribe_job_events(link, steps)
                steps.wait()  # on a failure the next job tries again
                self._job_events_on = link

    def _subscribe_job_events(self, link: Link, steps: _SetUpCalls) -> None:
        if not link.dialect.job_calls_return_ids:
            steps.call("core.set_options", [{"legacy_jobs": True}])
        steps.subscribe(JOB_EVENT)

    def _note_boot(self, boot_id: str) -> None:
        if self.boot_id is not None and boot_id != self.boot_id:
            self.stats.restarts_seen += 1
            log.warning("%s: middleware restarted (boot id changed)", self.name)
        self.boot_id = boot_id

    # -- keepalive and background reconnects ------------------------------------------
    def _start_supervisor(self) -> None:
        if self._supervisor is None and self.timeouts.keepalive:
            self._supervisor = gevent.spawn(self._supervise)

    def _supervise(self) -> None:
        """Ping while connected; reconnect in the background while someone listens for events."""
        failures = 0
        while not self._closed:
            link = self._link
            if link is not None and not link.dead.is_set():
                failures = 0
                if not link.dead.wait(self._keepalive_interval()):
                    self._keepalive(link)
            elif self._subscribers or self._jobs.waiting:
                failures = self._background_reconnect(failures)
            else:
                self._wake_supervisor.clear()
                self._wake_supervisor.wait()

    def _keepalive_interval(self) -> float:
        """About `keepalive` seconds, jittered by +-20 % so a fleet does not ping in step."""
        assert self.timeouts.keepalive
        return self.timeouts.keepalive * random.uniform(0.8, 1.2)

    def _keepalive(self, link: Link) -> None:
        """A websocket ping for middleboxes, an authenticated core.ping for the middleware."""
        try:
            link.ws.ping()
            if self.stats.logins:
                link.call("core.ping", [], self.timeouts.ping)
        except SessionError as exc:
            log.info("%s: keepalive failed (%s); dropping the connection", self.name, exc)
            link.close(ConnectionLost(f"no answer to keepalive within {self.timeouts.ping:g} s", self.name))

    def _background_reconnect(self, failures: int) -> int:
        try:
            self._ensure_link()
            return 0
        except AuthError as exc:
            log.warning("%s: reconnect stopped: %s", self.name, exc)
            self._wake_supervisor.clear()
            self._wake_supervisor.wait()
        except FleetError as exc:
            log.info("%s: background reconnect failed: %s", self.name, exc)
            gevent.sleep(self._backoff.delay(failures))
        return failures + 1

    # -- login -----------------------------------------------------------------------
    def _login(self, link: Link) -> None:
        key = self._endpoint.unix_path or f"{self._endpoint.host}:{self._endpoint.port}"
        try:
            if log_in(link, self._credentials, self._throttle, key, self.timeouts.login):
                self.stats.logins += 1
        except AuthError as exc:
            self._auth_failure = exc
            raise

    def _refuse_insecure_key(self) -> None:
        refuse_insecure_key(self.name, self._endpoint, self._credentials)


class _SetUpCalls:
    """Set-up calls sent without waiting, then waited for together, each within `timeout` of its send.

    No greenlet each: a new greenlet costs as much as the call it would wait for
    (docs/performance.md §2).
    If the link's window is full (a window smaller than the set-up), a call
    waits for a slot instead.
    """

    def __init__(self, link: Link, timeout: float) -> None:
        self._link, self._timeout = link, timeout
        self._sent: list[tuple[str, PendingCall, AsyncResult, float]] = []

    def call(self, method: str, params: list[Any]) -> AsyncResult:
        """Its result, ready once `wait` has returned."""
        return self._send(method, self._link.start_call, self._link.call, method, params)

    def subscribe(self, event: str) -> None:
        self._send(f"subscribe {event}", self._link.start_subscribe, self._link.subscribe, event)

    def _send(self, what: str, start: Callable[..., PendingCall | None], call: Callable[..., Any],
              *args: Any) -> AsyncResult:
        outcome = AsyncResult()
        pending = start(*args, partial(_settle_into, outcome))
        if pending is None:  # a dead link raises its error here; a full window waits for a slot
            outcome.set(call(*args, self._timeout))
        else:
            self._sent.append((what, pending, outcome, time.monotonic() + self._timeout))
        return outcome

    def wait(self) -> None:
        """Every reply, in the order sent; the first failure is raised."""
        for what, pending, outcome, deadline in self._sent:
            outcome.wait(max(0.0, deadline - time.monotonic()))
            if not outcome.ready():
                pending.cancel(CallTimeout(f"{what}: no reply within {self._timeout:g} s", self._link.host_name))
            outcome.get(block=False)


def _settle_into(outcome: AsyncResult, value: Any, error: BaseException | None) -> None:
    if error is None:
        outcome.set(value)
    else:
        outcome.set_exception(error)
