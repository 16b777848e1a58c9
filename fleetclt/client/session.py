"""One host, complete on its own: a persistent, authenticated, throttled session.

Never monkey-patches; never does I/O in its constructor.

    with HostSession("nas01", "wss://nas01/api/current", Credentials("admin", password)) as nas:
        nas.call("system.info")
        nas.call("pool.dataset.lock", "tank/secure", job=True, on_progress=print)

The first call connects: a token of the login budget first (a wait longer than
the call's timeout fails at once as ThrottledError), then the websocket (TLS pin
checked before anything is sent), `system.boot_id` and the login in one burst,
the caller's subscriptions, and re-attachment of jobs being waited for. From the first job
on, every connection also gets `core.set_options` (legacy job replies: the id
comes back at once and no call slot is held while a job runs) and a
`core.get_jobs` subscription (jobs are followed by events, never polled); until
then a plain call connects in one round trip after the upgrade. A dropped
connection is reopened on the next need with capped, jittered backoff.

A request that never reached the server (the connection was dead before the
send, or the send failed) goes again on a new connection, whatever the method;
one that may have run goes again only when the caller marked it safe to repeat,
and otherwise fails OutcomeUnknown (docs/protocol.md §10).
"""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import Semaphore

from ..errors import (
    AuthError,
    CallTimeout,
    ConfigError,
    ConnectionLost,
    FleetError,
    HandshakeError,
    JobUnknown,
    NotAJobError,
    NotSent,
    OutcomeUnknown,
    ProtocolError,
    RemoteCallError,
    SessionError,
    StandbyError,
    UnreachableError,
    without_host,
)
from ..protocol.ddp import DdpDialect
from ..protocol.endpoint import API_PATH, LEGACY_PATH, Endpoint
from ..protocol.jobs import JOB_EVENT, JobRef
from ..protocol.jsonrpc import CollectionUpdate, JsonRpcDialect, NotifyUnsubscribed, is_int, is_not_authenticated
from ..protocol.jsonrpc import Event as ProtocolEvent
from ..protocol.versions import NGINX_IDLE, Version, is_renamed, method_for, nginx_closes_idle, parse_version
from .job_watch import Call, JobWatch, ProgressCallback
from .link import Link, PendingCall, Settle
from .login import (
    Credentials,
    LoginBudget,
    ScramRoute,
    log_in,
    log_in_with_token,
    login_calls,
    refuse_insecure_key,
    will_log_in,
)
from .login_scram import HostOffers
from .setup_calls import SetUpCalls
from .throttle import AuthThrottle, Backoff
from .tls import TLSPolicy
from .tokens import SessionTokens
from .transport import open_websocket

__all__ = ["EndCallback", "EventCallback", "HostSession", "ProgressCallback", "SessionStats", "SubscriptionEnded",
           "Timeouts"]

log = logging.getLogger(__name__)

OLD_SERVER_STATUSES = frozenset({301, 302, 303, 307, 308, 404})
EventCallback = Callable[[CollectionUpdate], None]


@dataclass(frozen=True)
class SubscriptionEnded:
    """The server ended a subscription (notify_unsubscribed, or a refused re-subscription).

    `error` None is a clean end: the event source finished. `resubscribing` says the
    session sends it again (the server ended the login, not the subscription);
    otherwise it is over and is never sent again.
    """

    collection: str
    error: RemoteCallError | None
    resubscribing: bool = False


EndCallback = Callable[[SubscriptionEnded], None]
Subscriber = tuple[EventCallback, EndCallback | None]


@dataclass
class _Subscriptions:
    """A session's subscriptions by event name. One attribute of the session, not four: a
    HostSession stays under 30 attributes (docs/performance.md §1)."""

    subscribers: dict[str, list[Subscriber]] = field(default_factory=dict)  # accepted; re-sent on reconnect
    unanswered: dict[str, list[ProtocolEvent]] = field(default_factory=dict)  # sent, not answered: events wait
    ids: dict[str, tuple[Link, Any]] = field(default_factory=dict)  # the server's id of each, and its link
    changing: dict[str, Event] = field(default_factory=dict)  # a (un)subscribe on the wire: others wait for it


@dataclass(frozen=True)
class Timeouts:
    """Phase timeouts in seconds; None means no limit (only where that is safe)."""

    connect: float = 10.0      # TCP, TLS, upgrade, and each set-up call after it
    login: float = 20.0        # refusals answer late: 1-5 s, or up to 10 s when rate limited
    call: float = 60.0
    job: float | None = None
    job_idle: float | None = 600.0  # silence after which a job is looked up (silence alone never fails it)
    reconnect_attempts: int = 5
    restart: float = 180.0     # after a drop, how long nginx's 502 (middlewared restarting) is waited through
    keepalive: float | None = 25.0   # under 60 (and not None) for hosts before 26.0: see _check_keepalive
    ping: float = 10.0
    silence: float | None = 5.0      # calls in flight and nothing received this long: a websocket ping checks
    session_token: int | None = 600  # ttl of the token reconnects log in with (client/tokens.py); None: none
    session_token_after: float = 10.0  # a session's first token is asked for this long after its first login


@dataclass
class SessionStats:
    """What a session did, for tests, benchmarks and the soak report."""

    connects: int = 0
    logins: int = 0          # all of them: with the credential, and with a session token
    token_logins: int = 0
    tokens: int = 0          # session tokens received
    drops: int = 0
    restarts_seen: int = 0
    jobs_reattached: int = 0

    @property
    def primary_logins(self) -> int:
        """Logins with the password or API key itself."""
        return self.logins - self.token_logins


class HostSession:
    """A persistent session to one TrueNAS host; safe to share between greenlets."""

    def __init__(self, name: str, uri: str, credentials: Credentials | None = None, *,
                 tls: TLSPolicy | None = None, timeouts: Timeouts | None = None,
                 throttle: AuthThrottle | None = None, backoff: Backoff | None = None,
                 window: int = 10, controllers: Sequence[str] = ()) -> None:
        self.name = name
        self._endpoint = Endpoint.parse(uri)
        self._probe_path = self._endpoint.target in ("", "/")
        # An HA pair as one host: `uri` and the other controllers' URIs, tried in turn, the one in use
        # first (docs/protocol.md §5).
        self._controllers = [self._endpoint] + [Endpoint.parse(other) for other in controllers if other != uri]
        self._credentials = credentials or Credentials()
        self._tls = tls or TLSPolicy()
        self.timeouts = timeouts or Timeouts()
        self._throttle = throttle or AuthThrottle(sleep=gevent.sleep)
        self._backoff = backoff or Backoff()
        self._window = window
        self._link: Link | None = None
        self._connect_lock = Semaphore()
        self._jobs = JobWatch(name)
        self._subs = _Subscriptions()
        self._keepalive_refused: ConfigError | None = None
        self.boot_id: str | None = None
        self.stats = SessionStats()
        self._closed = False
        self._auth_failure: AuthError | None = None
        # what the host offers API keys (SCRAM), learned on a connect
        self._offers = HostOffers(tls_checked=self._tls.verify or self._tls.fingerprint is not None)
        self._supervisor: gevent.Greenlet | None = None
        self._wake_supervisor = Event()
        self._watch_jobs = False  # job events are subscribed from the first job on
        self._job_events_on: Link | None = None
        self._job_events_lock = Semaphore()
        self._version: tuple[str | None, Version] | None = None  # (boot id, version) it was asked under
        self._login_due: float | None = None  # while a connect waits for the budget: when its token comes
        self._tokens = SessionTokens(name, self.timeouts.session_token if will_log_in(self._credentials) else None,
                                     self._token_made, first_after=self.timeouts.session_token_after)

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
    def tls(self) -> TLSPolicy:
        """The TLS policy its connections use: the HTTP file path connects with the same one."""
        return self._tls

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
    def connect(self, within: float | None = None) -> None:
        """Open and authenticate now instead of on the first call.

        `within` (default Timeouts.call) bounds the wait for the login budget:
        ThrottledError at once when the next login is allowed later than that.
        """
        self._ensure_link(self.timeouts.call if within is None else within)

    def call(self, method: str, *params: Any, timeout: float | None = None, job: bool = False,
             on_progress: ProgressCallback | None = None, retry_safe: bool = False) -> Any:
        """Call `method`; with job=True wait for the job it starts and return its result.

        A call in flight when the connection drops fails with ConnectionLost,
        unless `retry_safe` says it may run twice (reads), then it is sent again.
        A job call is never sent twice, whatever `retry_safe` says.
        """
        if not job:
            args = list(params)
            return self._call(self.method_for(method, args), args, timeout, retry_safe)
        ref = self.start_job(method, *params, timeout=timeout)
        return self._wait_job(ref, on_progress, None, None)  # job events are on already

    def start_job(self, method: str, *params: Any, timeout: float | None = None) -> JobRef:
        """Submit a job and return its JobRef (id, boot id, the call) without waiting for it.

        The boot id is the one of the connection that carried the call (a call
        that never left goes again on a new connection, maybe to a new boot).
        """
        self._follow_jobs()
        args = list(params)
        method = self.method_for(method, args)  # the JobRef keeps the name the host ran
        result, link = self._call_via(method, args, timeout, False)
        if not is_int(result):
            raise NotAJobError.for_reply(method, result, self.name)
        return JobRef(link.boot_id, int(result), method, params, submitted=True)

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

    def wait_job(self, job: int | JobRef, *, on_progress: ProgressCallback | None = None,
                 timeout: float | None = None, idle_timeout: float | None = None) -> Any:
        """Follow a job by its events until it ends; re-attach by id after a reconnect to the same boot.

        A bare id is taken to be of the host's current boot. A JobRef (from
        `start_job`, or a journal) of another boot ends JobUnknown at once:
        after a restart its id names some other job. A silent job is waited
        for as long as the server lists it; `timeout` (default Timeouts.job)
        bounds the whole wait, `idle_timeout` (Timeouts.job_idle) is how long
        to trust silence before asking the server.
        """
        self._follow_jobs()
        ref = job if isinstance(job, JobRef) else JobRef(None, job)
        if ref.boot_id is None:
            ref = replace(ref, boot_id=self.boot_id)
        return self._wait_job(ref, on_progress, timeout, idle_timeout)

    def _wait_job(self, ref: JobRef, on_progress: ProgressCallback | None, timeout: float | None,
                  idle_timeout: float | None) -> Any:
        timeout = self.timeouts.job if timeout is None else timeout
        idle = self.timeouts.job_idle if idle_timeout is None else idle_timeout
        with gevent.Timeout(timeout, CallTimeout(f"job {ref.id} did not end within {timeout} s",
                                                 self.name) if timeout else None):
            return self._jobs.wait(ref, self._live_call, idle, on_progress)

    def abort_job(self, job: int | JobRef) -> None:
        """Abort a job; a JobRef of another boot is refused (JobUnknown): its id names another job now."""
        if isinstance(job, JobRef):
            self._ensure_link()
            if job.boot_id not in (None, self.boot_id):
                raise JobUnknown(f"job {job.id} was started under another boot of the middleware; "
                                 "not aborting whatever job has that id now", self.name)
            job = job.id
        self.call("core.job_abort", job)

    def subscribe(self, event: str, callback: EventCallback, on_end: EndCallback | None = None) -> None:
        """Receive `event` updates from now on (connecting if needed); the subscription survives reconnects.

        The callback is registered only once the server accepted the subscription:
        a refusal (EACCES for a name the login may not see) raises here, and a
        refused name is never sent again. When the server ends the subscription,
        `on_end` gets a SubscriptionEnded (without one, it is logged).
        Subscribers of one event share one subscription on the server: a second
        gets events from now on, not what the server sent the first on subscribing.
        """
        if event == JOB_EVENT:
            self._follow_jobs()
        else:
            self._wait_changes(event)
            if event not in self._subs.subscribers:
                self._subscribe_on_server(event, [(callback, on_end)])
                return
        self._subs.subscribers.setdefault(event, []).append((callback, on_end))

    def unsubscribe(self, event: str, callback: EventCallback) -> None:
        """Take back a subscriber `subscribe` added; the last one leaving ends the subscription on the server.

        Returns once the server has ended it (core.unsubscribe, DDP unsub), and no
        later connection subscribes it again. Disconnected, or the connection lost
        on the way, it is just forgotten: the server drops a closed connection's
        subscriptions. A callback not subscribed (the server ended that subscription
        meanwhile) is no error. Job events stay on for the session's own job waits.
        """
        self._wait_changes(event)
        subscribers = self._subs.subscribers.get(event, [])
        index = next((i for i, (subscribed, _) in enumerate(subscribers) if subscribed == callback), None)
        if index is None:
            return
        left = subscribers[:index] + subscribers[index + 1:]  # a new list: the reader may be iterating the old
        if left:
            self._subs.subscribers[event] = left
            return
        del self._subs.subscribers[event]
        if event != JOB_EVENT:
            self._unsubscribe_on_server(event)

    def _unsubscribe_on_server(self, event: str) -> None:
        on = self._subs.ids.pop(event, None)
        if on is None or on[0].dead.is_set():
            return
        link, sub_id = on
        with self._change(event):
            try:
                link.unsubscribe(sub_id, self.timeouts.call)
            except FleetError as exc:  # forgotten here all the same; a lost connection took it along
                log.info("%s: unsubscribing from %s failed: %s", self.name, event, exc)

    def _wait_changes(self, event: str) -> None:
        """Until no subscribe or unsubscribe of `event` is on the wire: one at a time per name.

        Two at once would subscribe twice (every event would come twice), or take a
        server's notice ending the old subscription for the end of the new one.
        """
        while (busy := self._subs.changing.get(event)) is not None:
            busy.wait()

    @contextmanager
    def _change(self, event: str) -> Iterator[None]:
        done = self._subs.changing[event] = Event()
        try:
            yield
        finally:
            self._subs.changing.pop(event, None)
            done.set()

    def _subscribe_on_server(self, event: str, subscribers: list[Subscriber]) -> None:
        """core.subscribe, then register `subscribers`; what the server sends before its answer waits.

        The server may send a source's first events, or its notify_unsubscribed for
        an argument it rejected, before it answers the subscribe call.
        """
        held = self._subs.unanswered.setdefault(event, [])
        try:
            with self._change(event):
                for attempt in range(2):
                    link = self._ensure_link()
                    held.clear()  # what came before this subscribe went out is not its own
                    try:
                        sub_id = link.subscribe(event, self.timeouts.call)
                        break
                    except RemoteCallError as exc:
                        if attempt or not self._session_ended(exc, link):
                            raise
        finally:
            self._subs.unanswered.pop(event, None)
        for notice in held:
            if isinstance(notice, NotifyUnsubscribed) and notice.error is not None:
                raise notice.error  # refused after all: an argument the event source rejected
        self._subs.subscribers.setdefault(event, []).extend(subscribers)
        self._subs.ids[event] = (link, sub_id)
        for notice in held:
            self._on_event(notice)

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
        return self._call_via(method, params, timeout, retry_safe)[0]

    def _call_via(self, method: str, params: list[Any], timeout: float | None,
                  retry_safe: bool) -> tuple[Any, Link]:
        """The reply and the connection that carried the call; up to three sends in all.

        Sent again on a new connection: a request that never left (NotSent), whatever
        the method; one that may have run (OutcomeUnknown) only when `retry_safe`; one
        refused unrun because the server ended our login. The login budget is waited
        for only within what is left of `timeout` over all tries, or refused at once.
        """
        timeout = self.timeouts.call if timeout is None else timeout
        until = time.monotonic() + timeout
        for attempt in range(3):
            link = self._ensure_link(max(0.0, until - time.monotonic()) if attempt else timeout)
            self._tokens.used(link)
            try:
                return link.call(method, params, timeout), link
            except NotSent:
                if attempt == 2:
                    raise
            except ConnectionLost:
                if not retry_safe or attempt == 2:
                    raise
            except RemoteCallError as exc:
                if attempt == 2 or not self._session_ended(exc, link):
                    raise
        raise AssertionError("unreachable")

    def _session_ended(self, error: RemoteCallError, link: Link) -> bool:
        """True when the server ended our login and refused a call unrun; the link is closed then.

        Expiry, or a logout elsewhere: the caller opens a fresh, logged-in connection
        the usual way (one login, through the auth throttle) and sends the call once more.
        """
        if not (is_not_authenticated(error) and self.stats.logins):
            return False
        link.close(ConnectionLost("the server ended the session", self.name))
        return True

    def _live_call(self) -> Call:
        """A call function for the job watch: reconnects now if needed, and after an ended login."""
        self._ensure_link()
        return lambda method, params: self._call(method, params, None, retry_safe=True)

    def _call_on(self, link: Link) -> Call:
        return lambda method, params: link.call(method, params, self.timeouts.call)

    # -- events --------------------------------------------------------------------
    def _on_down(self, error: SessionError) -> None:
        self.stats.drops += 0 if self._closed else 1
        self._jobs.link_down()

    def _on_event(self, event: ProtocolEvent) -> None:
        if isinstance(event, CollectionUpdate):
            if event.collection == JOB_EVENT:
                self._jobs.feed(event)
            held = self._subs.unanswered.get(event.collection)
            if held is not None:
                held.append(event)
            for callback, _ in self._subs.subscribers.get(event.collection, []):
                self._run_callback(callback, event)
        elif isinstance(event, NotifyUnsubscribed):
            held = self._subs.unanswered.get(event.collection)
            if held is not None:
                held.append(event)
            elif event.collection in self._subs.subscribers:
                self._on_unsubscribed(event.collection, event.error)

    def _on_unsubscribed(self, collection: str, error: RemoteCallError | None) -> None:
        """The server ended a subscription: tell its subscribers; re-send it only if the login ended.

        A clean end (the source finished) or an error (a bad argument, the source
        failed, not allowed) would end again at once: the subscription is over.
        ENOTAUTHENTICATED means the server ended our login: log in again and re-subscribe.
        """
        resubscribing = error is not None and is_not_authenticated(error)
        subscribers = self._subs.subscribers[collection] if resubscribing else self._subs.subscribers.pop(collection)
        self._subs.ids.pop(collection, None)
        if resubscribing:
            gevent.spawn(self._resubscribe, collection)
        self._tell_ended(subscribers, SubscriptionEnded(collection, error, resubscribing))

    def _resubscribe(self, collection: str) -> None:
        """Subscribe again after the server ended our login; a reconnect on the way leaves this one out."""
        subscribers = self._subs.subscribers.pop(collection, [])
        try:
            self._subscribe_on_server(collection, subscribers)
        except RemoteCallError as exc:
            log.warning("%s: subscription to %s not renewed: %s", self.name, collection, exc)
            self._tell_ended(subscribers, SubscriptionEnded(collection, exc))
        except FleetError:  # no connection now: the next one subscribes it with the others
            self._subs.subscribers.setdefault(collection, []).extend(subscribers)

    def _tell_ended(self, subscribers: list[Subscriber], notice: SubscriptionEnded) -> None:
        if not any(on_end for _, on_end in subscribers):
            log.warning("%s: the server ended the subscription to %s%s", self.name, notice.collection,
                        f": {notice.error}" if notice.error else "")
        for _, on_end in subscribers:
            if on_end is not None:
                self._run_callback(on_end, notice)

    def _run_callback(self, callback: Callable[[Any], None], event: CollectionUpdate | SubscriptionEnded) -> None:
        try:
            callback(event)
        except Exception:  # a subscriber's bug must not kill the connection's reader
            log.exception("%s: subscriber for %s failed", self.name, event.collection)

    # -- connecting ------------------------------------------------------------------
    def _ensure_link(self, within: float | None = None) -> Link:
        """The live link, or a new one; `within` bounds the wait for the login budget (None: the throttle's)."""
        link = self._link
        if link is not None and not link.dead.is_set():
            return link
        if self._closed:
            raise ConnectionLost("session is closed", self.name)
        if self._auth_failure is not None:
            raise self._auth_failure  # a refused credential is not tried again by this session
        if self._keepalive_refused is not None:
            raise self._keepalive_refused
        due = self._login_due  # another greenlet's connect waits for the budget
        if due is not None and within is not None and due - time.monotonic() > within:
            raise self._throttle.refusal(self.name, due - time.monotonic())
        with self._connect_lock:
            if self._link is None or self._link.dead.is_set():
                self._refuse_insecure_key()
                self._link = self._reconnect(None if within is None else time.monotonic() + within)
                self._start_supervisor()
                self._wake_supervisor.set()  # it asks for the session token once the caller's call is out
                if self._supervisor is None:
                    gevent.spawn(self._tokens.ask_if_due, self._link)
            return self._link

    def _reconnect(self, until: float | None) -> Link:
        """Open a link; after a drop, retry with jittered backoff (auth failures never retry).

        After a drop, a gateway's answer (502 from the host's nginx) means its
        middleware is restarting: those tries do not use up `reconnect_attempts`,
        they go on for up to `Timeouts.restart` seconds (docs/protocol.md §10).
        A first connect takes one try: nothing says that host was ever up, and a
        server that closes a new connection at once (1008: not on its allowlist)
        would only do it again.
        """
        first = self.stats.connects == 0
        attempts = 1 if first else self.timeouts.reconnect_attempts
        failures, tries, restarting_since = 0, 0, None
        while True:
            try:
                return self._open_controller(until)
            except (UnreachableError, ConnectionLost) as exc:
                if not first and isinstance(exc, HandshakeError) and exc.gateway:
                    restarting_since = restarting_since or time.monotonic()
                    if time.monotonic() - restarting_since >= self.timeouts.restart:
                        raise
                else:
                    failures += 1
                    if failures >= attempts:
                        raise
                delay = self._backoff.delay(tries)
                tries += 1
                log.info("%s: reconnect failed (%s); next try in %.1f s", self.name, exc, delay)
                gevent.sleep(delay)

    def _open_controller(self, until: float | None) -> Link:
        """Open a link to the controller in use; a standby or unreachable one hands over to the next."""
        for _ in self._controllers[1:]:
            try:
                return self._open(until)
            except (StandbyError, UnreachableError) as exc:
                self._controllers.append(self._controllers.pop(0))
                following = self._endpoint = self._controllers[0]
                self._probe_path = following.target in ("", "/")
                self._refuse_insecure_key()
                log.info("%s: %s; trying the controller at %s", self.name, without_host(exc), following.uri)
        return self._open(until)

    def _open(self, until: float | None) -> Link:
        """Budget first, then connect: no unauthenticated call goes out unless the login follows at once.

        A set-up call lost with the connection is the connect's failure, never a
        caller's call that may have run.
        """
        budget = self._login_budget(until)
        try:
            ws, dialect = self._open_websocket()
        except BaseException:
            if budget is not None:
                budget.refund()  # nothing was sent
            raise
        link = Link(self.name, ws, dialect, self._on_event, self._on_down, self._window)
        try:
            link.handshake(self.timeouts.connect)
            self._set_up(link, budget)
        except OutcomeUnknown:
            link.close()
            raise link.error or ConnectionLost("connection lost while connecting", self.name) from None
        except BaseException:
            link.close()
            raise
        self.stats.connects += 1
        return link

    def _login_budget(self, until: float | None) -> LoginBudget | None:
        """A token for the login this connect makes (None without a credential), waited for until `until`."""
        if not will_log_in(self._credentials):
            return None
        budget = LoginBudget(self._throttle, self._budget_key(), self.name,
                             login_calls(self._credentials, self._endpoint, self._offers))
        max_wait = None if until is None else max(0.0, until - time.monotonic())
        try:
            budget.take_first(max_wait, self._waiting_for_login)
        finally:
            self._login_due = None
        return budget

    def _waiting_for_login(self, delay: float) -> None:
        self._login_due = time.monotonic() + delay

    def _budget_key(self) -> str:
        return self._endpoint.unix_path or f"{self._endpoint.host}:{self._endpoint.port}"

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

    def _set_up(self, link: Link, budget: LoginBudget | None) -> None:
        """The boot id (it needs no login) goes out with the login; subscriptions follow it.

        A session that has not followed a job yet subscribes to no job events, so a
        plain call connects in one round trip after the upgrade instead of two.
        """
        steps = SetUpCalls(link, self.timeouts.connect)
        boot_id = steps.call("system.boot_id", [])
        self._login(link, budget, boot_id)
        self._check_keepalive(link)
        watch_jobs = self._watch_jobs  # once: a first job may start meanwhile and subscribes itself
        if watch_jobs:
            self._subscribe_job_events(link, steps)
        renewed = {event: steps.subscribe(event, refusable=True)
                   for event in list(self._subs.subscribers) if event != JOB_EVENT}
        steps.wait()
        for event, outcome in renewed.items():
            if outcome.exception is None:
                self._renewed(link, event, outcome.value)
            elif event in self._subs.subscribers:  # refused now (roles changed): over, and the connection is fine
                self._tell_ended(self._subs.subscribers.pop(event), SubscriptionEnded(event, outcome.exception))
        if watch_jobs:
            self._job_events_on = link
        self._note_boot(link, boot_id.get())
        self.stats.jobs_reattached += self._jobs.reattach(self._call_on(link))

    def _renewed(self, link: Link, event: str, sub_id: Any) -> None:
        """A subscription sent again on a new connection; its last subscriber may have left meanwhile."""
        if event in self._subs.subscribers:
            self._subs.ids[event] = (link, sub_id)
        else:
            link.unsubscribe(sub_id, self.timeouts.connect)

    def _follow_jobs(self) -> None:
        """Job events from now on, on this connection and every later one (before a job starts)."""
        self._watch_jobs = True
        with self._job_events_lock:
            for attempt in range(2):
                link = self._ensure_link()  # a reconnect here subscribes in _set_up
                if self._job_events_on is link:
                    return
                steps = SetUpCalls(link, self.timeouts.connect)
                self._subscribe_job_events(link, steps)
                try:
                    steps.wait()  # on a failure the next job tries again
                except RemoteCallError as exc:
                    if attempt or not self._session_ended(exc, link):
                        raise
                    continue
                self._job_events_on = link
                return

    def _subscribe_job_events(self, link: Link, steps: SetUpCalls) -> None:
        if not link.dialect.job_calls_return_ids:
            steps.call("core.set_options", [{"legacy_jobs": True}])
        steps.subscribe(JOB_EVENT)

    def _note_boot(self, link: Link, boot_id: str) -> None:
        """Every connect: a new boot id ends the waits on jobs of the old boot (their ids are reused)."""
        link.boot_id = boot_id
        if self.boot_id is not None and boot_id != self.boot_id:
            self.stats.restarts_seen += 1
            log.warning("%s: middleware restarted (boot id changed)", self.name)
        self.boot_id = boot_id
        self._jobs.booted(boot_id)

    # -- keepalive and background reconnects ------------------------------------------
    def _start_supervisor(self) -> None:
        if self._supervisor is None and (self.timeouts.keepalive or self.timeouts.silence):
            self._supervisor = gevent.spawn(self._supervise)

    def _supervise(self) -> None:
        """Watch the link while connected; reconnect in the background while someone listens for events."""
        failures = 0
        while not self._closed:
            link = self._link
            if link is not None and not link.dead.is_set():
                failures = 0
                self._watch(link)
            elif self._subs.subscribers or self._jobs.waiting:
                failures = self._background_reconnect(failures)
            else:
                self._wake_supervisor.clear()
                self._wake_supervisor.wait()

    def _watch(self, link: Link) -> None:
        """Until a keepalive is due (then send it) or the link dies; meanwhile look for a half-open link.

        Every `silence` seconds: when calls are in flight and nothing at all arrived
        since the last look, a websocket ping (answered outside the server's call
        slots) tells a slow server from a dead connection long before the keepalive
        would (docs/protocol.md §10).
        """
        silence = self.timeouts.silence
        due = time.monotonic() + self._keepalive_interval() if self.timeouts.keepalive else None
        reads = link.ws.reads
        while True:
            left = None if due is None else max(0.0, due - time.monotonic())
            waits = [w for w in (silence, left, self._tokens.due_in(link)) if w is not None]
            if link.dead.wait(min(waits) if waits else None):
                return
            self._tokens.ask_if_due(link)  # a used connection's token is replaced before it expires
            if due is not None and time.monotonic() >= due:
                self._keepalive(link)
                return
            if link.in_flight and link.ws.reads == reads and not self._answers(link, "calls in flight"):
                return
            reads = link.ws.reads

    def _keepalive_interval(self) -> float:
        """At most `keepalive` seconds, up to 20 % less so a fleet does not ping in step.

        Never more: a keepalive under nginx's 60 s must stay under it (docs/protocol.md §10).
        """
        assert self.timeouts.keepalive
        return self.timeouts.keepalive * random.uniform(0.8, 1.0)

    def _keepalive(self, link: Link) -> None:
        """Proof of life that never waits for a call slot (docs/protocol.md §10).

        A websocket ping, which the server answers outside its call slots; anything
        received meanwhile counts too. When no call is in flight, a logged-in session
        also sends core.ping outside the window, so the middleware itself sees
        traffic; nobody waits for its reply. The link is dropped only when the
        server sent nothing at all within `ping` seconds.
        """
        try:
            if self.stats.logins and not link.in_flight:
                link.probe("core.ping")
        except SessionError as exc:
            log.info("%s: keepalive failed (%s)", self.name, exc)
            return
        self._answers(link, "keepalive")

    def _answers(self, link: Link, why: str) -> bool:
        """A websocket ping: True if anything came back within `ping` seconds, else the link is dropped."""
        try:
            if link.ping(self.timeouts.ping) or link.dead.is_set():
                return True
        except SessionError as exc:
            log.info("%s: %s ping failed (%s)", self.name, why, exc)
            return False  # the failed send killed the link
        log.info("%s: no answer to a %s ping; dropping the connection", self.name, why)
        link.close(ConnectionLost(f"no answer to a {why} ping within {self.timeouts.ping:g} s", self.name))
        return False

    def _check_keepalive(self, link: Link) -> None:
        """Refuse a keepalive that nginx would outlast: None or 60 s and more, on a host before 26.0-BETA.2.

        Checked here because only a connection tells the version: a /websocket host is
        24.10 or older; otherwise one system.version_short call, made only for such a
        keepalive. A Unix socket has no nginx, and a session without a login cannot ask.
        """
        keepalive = self.timeouts.keepalive
        if (keepalive is not None and keepalive < NGINX_IDLE) or self._endpoint.unix_path or not link.is_logged_in:
            return
        version = ("24.10 or older" if self._endpoint.is_legacy
                   else str(link.call("system.version_short", [], self.timeouts.connect)))
        if not nginx_closes_idle(version):
            return
        asked = "no keepalive" if keepalive is None else f"a keepalive of {keepalive:g} s"
        self._keepalive_refused = ConfigError(
            f"{self.name}: {asked} is too long for TrueNAS {version}: nginx in front of it closes a "
            f"websocket idle for {NGINX_IDLE:g} s (before 26.0-BETA.2); use Timeouts(keepalive=...) under 60")
        raise self._keepalive_refused

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
    def _login(self, link: Link, budget: LoginBudget | None, boot_id: AsyncResult) -> None:
        """With the session token when one may work (a refused one falls back once), else the credential."""
        if budget is None:
            return
        token = self._tokens.take(boot_id, self.timeouts.connect)
        if token is not None and log_in_with_token(link, token, budget, self.timeouts.login):
            budget.refund()  # tokens taken up front for a login of more calls (SCRAM, a two-factor code)
            self.stats.token_logins += 1
        else:
            try:
                if not log_in(link, self._credentials, budget, self.timeouts.login,
                              ScramRoute(self._endpoint, self._offers)):
                    return
            except AuthError as exc:
                self._auth_failure = exc
                raise
        link.logged_in()
        self._tokens.logged_in(first=not self.stats.logins)
        self.stats.logins += 1

    def _token_made(self) -> None:
        self.stats.tokens += 1

    def _refuse_insecure_key(self) -> None:
        refuse_insecure_key(self.name, self._endpoint, self._credentials, self._offers)
