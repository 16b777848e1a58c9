"""One live connection of a session: a reader greenlet, pending calls by id, a call window.

A Link lives exactly as long as its websocket. The session makes a new one after
a drop; nothing here reconnects. Replies arrive out of order and are matched to
their AsyncResult by id; at most `window` calls are on the wire at once (the
server runs 10 and refuses the 21st), the rest wait here, not on the server.

A call too big for the server's message limit is refused here, unsent: the
server would close the whole connection over it (docs/protocol.md §2).

A call knows whether its request left: one refused because the link was dead
before the send, or whose send failed, raises NotSent (the server never got a
whole message, so the session sends it again on a new connection); one whose
connection drops after the send may have run. Before sending on an idle link,
a readable socket lets the reader look first: what arrived while nobody waited
is often the peer's close (docs/protocol.md §10).
"""
from __future__ import annotations

import contextlib
import logging
import select
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from gevent.lock import BoundedSemaphore

from ..errors import (
    CallTimeout,
    ConnectionLost,
    HandshakeError,
    NotSent,
    OutcomeUnknown,
    ProtocolError,
    RemoteCallError,
    RequestTooLarge,
    SessionError,
    without_host,
)
from ..protocol.jsonrpc import (
    Connected,
    ConnectionFailure,
    Dialect,
    ErrorReply,
    HandshakeFailed,
    Reply,
    RequestId,
)
from ..protocol.jsonrpc import Event as ProtocolEvent
from ..protocol.redact import redact_frame
from .transport import WebSocket

log = logging.getLogger(__name__)

DEFAULT_WINDOW = 10
# The server's limits on one received message, in characters (docs/protocol.md §2).
ANONYMOUS_LIMIT, LOGGED_IN_LIMIT, EXTENDED_LIMIT = 8192, 65536, 2097152
EXTENDED_METHODS = frozenset({"filesystem.file_receive"})
EventHandler = Callable[[ProtocolEvent], None]
DownHandler = Callable[[SessionError], None]
Settle = Callable[[Any, "BaseException | None"], None]  # (result, error): exactly one is meaningful


class Link:
    """Calls over one websocket; `dead` is set once it can carry no more."""

    def __init__(self, host_name: str, ws: WebSocket, dialect: Dialect, on_event: EventHandler,
                 on_down: DownHandler, window: int = DEFAULT_WINDOW) -> None:
        self.host_name, self.ws, self.dialect = host_name, ws, dialect
        self._on_event = on_event
        self._on_down = on_down
        self._pending: dict[RequestId, AsyncResult | PendingCall | _Probe] = {}
        self._background = 0  # of them, calls no caller waits for (a session token request)
        self._window = BoundedSemaphore(window)
        self._limit = ANONYMOUS_LIMIT  # the largest message the server takes now
        self.boot_id: str | None = None  # the middleware boot this connection reached (set by the session)
        self._poll = select.poll()
        self._poll.register(ws.fileno(), select.POLLIN)
        self._pong = Event()
        ws.on_pong = self._on_pong
        self._connected = AsyncResult()
        self.dead = Event()
        self.error: SessionError | None = None
        self._reader = gevent.spawn(self._read_loop)

    def handshake(self, timeout: float) -> None:
        """Send the dialect's opening frames (DDP `connect`) and wait for its answer."""
        frames = self.dialect.handshake()
        if not frames:
            return
        for frame in frames:
            self._send(frame)
        try:
            self._connected.get(timeout=timeout)
        except gevent.Timeout:
            raise CallTimeout(f"no answer to the DDP handshake within {timeout:g} s", self.host_name) from None

    def call(self, method: str, params: list[Any], timeout: float | None) -> Any:
        """Send one call and wait for its reply; the wait for a window slot counts too."""
        return self._exchange(method, self.dialect.request(method, params), method, timeout)

    def subscribe(self, name: str, timeout: float | None) -> Any:
        """Subscribe; returns the subscription id (JSON-RPC core.subscribe or DDP sub/ready)."""
        return self._exchange("core.subscribe", self.dialect.subscribe(name), f"subscribe {name}", timeout)

    def unsubscribe(self, sub_id: RequestId, timeout: float | None) -> None:
        """End the subscription `sub_id`; returns once the server has handled it.

        So its notice (an event source's notify_unsubscribed, DDP nosub) has arrived
        before this returns, and cannot be taken for the end of a later subscription
        to the same name. DDP's `unsub` gets no answer: a core.ping sent right behind
        it does (a refusal too: any answer will do), and the server handles one
        connection's messages in order (docs/protocol.md §12).
        """
        call_id, frame = self.dialect.unsubscribe(sub_id)
        if call_id is not None:
            self._exchange("core.unsubscribe", (call_id, frame), "unsubscribe", timeout)
            return
        if self.dead.is_set():
            raise self._not_sent("unsubscribe")
        self._send(frame)
        with contextlib.suppress(RemoteCallError):
            self.call("core.ping", [], timeout)

    def logged_in(self) -> None:
        """The login succeeded: the server now takes messages up to 64 KiB on this connection."""
        self._limit = LOGGED_IN_LIMIT

    @property
    def is_logged_in(self) -> bool:
        return self._limit != ANONYMOUS_LIMIT

    def ping(self, timeout: float) -> bool:
        """A websocket ping; True if the server sent anything at all (its pong, any frame) within `timeout`.

        The server's websocket layer answers pings itself, outside its call slots
        (docs/protocol.md §10), so ten slow calls in flight do not delay the answer.
        """
        reads = self.ws.reads
        self._pong.clear()
        self.ws.ping()
        return self._pong.wait(timeout) or self.ws.reads != reads

    def probe(self, method: str) -> None:
        """Send `method` outside the window, its reply waited for by nobody: traffic for the middleware.

        It holds no window slot, so the caller's calls never wait behind it; it stays
        in `in_flight` until answered, so a caller checking that sends one at a time.
        """
        call_id, frame = self.dialect.request(method, [])
        self._pending[call_id] = _Probe(self._pending, call_id)
        self._send(frame)

    def _on_pong(self, payload: bytes) -> None:
        self._pong.set()

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered, but for background ones (they keep no caller waiting)."""
        return len(self._pending) - self._background

    def start_call(self, method: str, params: list[Any], settle: Settle) -> PendingCall | None:
        """Send one call without waiting; `settle(value, error)` runs in the reader when it ends.

        For pipelined fan-out: no greenlet and no timer per call. Returns the
        pending call (to `cancel` it), or None, having sent nothing, when the link
        is dead, its window is full or the call is too big; the caller then uses
        `call()`, which waits for a slot or raises.
        """
        call_id, frame = self.dialect.request(method, params)
        if len(frame) > self._limit and self._oversize(method, len(frame)) or not self._take_slot():
            return None
        return self._start(call_id, frame, settle, method)

    def start_background(self, method: str, params: list[Any], settle: Settle) -> bool:
        """A call no caller waits for (a session token request), answered to `settle` in the reader.

        Like `probe`, outside the window (at most one is out at a time), and not
        in `in_flight`: the caller's calls neither wait behind it nor lose the
        closed-while-idle check to it. False, nothing sent, on a dead link.
        """
        call_id, frame = self.dialect.request(method, params)
        if self.dead.is_set() or self._closed_while_idle():
            return False
        self._background += 1
        return self._start(call_id, frame, settle, method, background=True) is not None

    def start_subscribe(self, name: str, settle: Settle) -> PendingCall | None:
        """`subscribe` without waiting, as `start_call`: the subscription id goes to `settle`."""
        if not self._take_slot():
            return None
        return self._start(*self.dialect.subscribe(name), settle, f"subscribe {name}")

    def _take_slot(self) -> bool:
        return not self.dead.is_set() and not self._closed_while_idle() and self._window.acquire(blocking=False)

    def _start(self, call_id: RequestId, frame: str, settle: Settle, what: str,
               background: bool = False) -> PendingCall | None:
        pending = self._pending[call_id] = PendingCall(self, call_id, settle, background)
        try:
            self._send(frame, call_id, what)
        except NotSent:  # nothing left, nothing settled: the caller takes the slow path
            if background:
                self._background -= 1
            else:
                self._window.release()
            return None
        return pending

    def _closed_while_idle(self) -> bool:
        """With no call in flight the reader may not have run since something arrived: let it look first.

        What arrives on an idle link is mostly an event or the peer's close; a
        request sent after that close would be lost though it never reached the
        server. Costs one poll() per call on an idle link (docs/performance.md §3).
        """
        if self.in_flight or not self._poll.poll(0):
            return False
        gevent.idle()  # the loop polls first: the reader takes what is there, a close kills the link
        return bool(self.dead.is_set())

    def _settled(self, call_id: RequestId, settle: Settle, value: Any, error: BaseException | None,
                 background: bool) -> None:
        self._pending.pop(call_id, None)
        if background:
            self._background -= 1
        else:
            self._window.release()
        settle(value, error)

    def send(self, frame: str) -> None:
        """Send a frame that gets no reply (notification, unsubscribe)."""
        self._send(frame)

    def close(self, error: SessionError | None = None) -> None:
        """Close politely; pending calls fail with `error` (ConnectionLost by default)."""
        self._reader.kill(block=False)
        self.ws.close()
        self._die(error or ConnectionLost("connection closed by the client", self.host_name))

    def _exchange(self, method: str, request: tuple[RequestId, str], what: str, timeout: float | None) -> Any:
        call_id, frame = request
        if len(frame) > self._limit:
            error = self._oversize(method, len(frame))
            if error is not None:
                raise error
        if self.dead.is_set() or self._closed_while_idle():
            raise self._not_sent(what)
        # The CallTimeout is built only when the timer fires: most calls never need it.
        timer = gevent.Timeout(timeout)  # raises itself; None: never
        timer.start()
        try:
            with self._window:
                return self._send_and_wait(call_id, frame, what)
        except gevent.Timeout as exc:
            if exc is not timer:
                raise
            raise CallTimeout(f"{what}: no reply within {timeout:g} s", self.host_name) from None
        finally:
            timer.close()

    def _send_and_wait(self, call_id: RequestId, frame: str, what: str) -> Any:
        if self.dead.is_set():  # it died while this call waited for a window slot
            raise self._not_sent(what)
        waiter = AsyncResult()
        self._pending[call_id] = waiter
        try:
            self._send(frame, call_id, what)
            return waiter.get()
        finally:
            self._pending.pop(call_id, None)

    def _oversize(self, method: str, size: int) -> RequestTooLarge | None:
        """The error for a message over the server's limit, or None (a file upload within its 2 MiB)."""
        limit = self._limit
        if limit == LOGGED_IN_LIMIT and method in EXTENDED_METHODS:
            limit = EXTENDED_LIMIT
        if size <= limit:
            return None
        when = "before login" if limit == ANONYMOUS_LIMIT else "for one message"
        return RequestTooLarge(f"{method}: not sent: the request is {size} characters and the server takes "
                               f"at most {limit} {when}; it would close the connection", self.host_name)

    def _not_sent(self, what: str) -> NotSent:
        why = without_host(self.error) if self.error else "connection lost"
        return NotSent(f"{what}: not sent: {why}", self.host_name)

    def _send(self, frame: str, call_id: RequestId | None = None, what: str = "frame") -> None:
        """Send one frame; a failed send raises NotSent, and the call's own entry leaves before the link dies.

        A send that failed never put a whole message on the wire (a frame cut
        short is no message to the server), so that call never ran.
        """
        if log.isEnabledFor(logging.DEBUG):  # --debug (or an agent relaying to one): masked
            log.debug("%s > %s", self.host_name, redact_frame(frame))
        try:
            self.ws.send(frame)
        except ConnectionLost as exc:
            if call_id is not None:
                self._pending.pop(call_id, None)
            self._die(exc)  # the socket is gone even if the reader has not noticed yet
            raise NotSent(f"{what}: not sent: {without_host(exc)}", self.host_name) from None

    def _read_loop(self) -> None:
        try:
            while True:
                self._receive_one(self.ws.receive())
        except SessionError as exc:
            self._die(exc)
        except Exception as exc:  # a bug must not leave callers waiting forever
            log.exception("%s: reader failed", self.host_name)
            self._die(ConnectionLost(f"reader failed: {exc!r}", self.host_name))

    def _receive_one(self, text: str) -> None:
        if log.isEnabledFor(logging.DEBUG):  # --debug (or an agent relaying to one): masked
            log.debug("%s < %s", self.host_name, redact_frame(text))
        self._dispatch_text(text)

    def _dispatch_text(self, text: str) -> None:
        """Dispatch one frame; a frame we cannot parse is logged and skipped, not fatal.

        A newer server may add notification types; dropping the connection on each
        would loop through reconnects. A call whose reply was unreadable times out.
        """
        try:
            events = self.dialect.receive(text)
        except ProtocolError as exc:
            log.warning("%s: skipped a frame: %s", self.host_name, exc)
            return
        for event in events:
            self._dispatch(event)

    def _dispatch(self, event: ProtocolEvent) -> None:
        if isinstance(event, Reply):
            waiter = self._waiter(event.id)
            if waiter is not None:
                waiter.set(event.result)
        elif isinstance(event, ErrorReply):
            waiter = self._waiter(event.id)
            if waiter is not None:
                waiter.set_exception(event.error)
        elif isinstance(event, ConnectionFailure):
            for waiter in list(self._pending.values()):
                waiter.set_exception(event.error)
        elif isinstance(event, Connected):
            self._connected.set(event.session)
        elif isinstance(event, HandshakeFailed):
            self._connected.set_exception(HandshakeError(
                f"server refused the DDP handshake (it speaks version {event.version!r})", self.host_name))
        else:
            self._on_event(event)

    def _waiter(self, call_id: RequestId) -> AsyncResult | PendingCall | _Probe | None:
        """The unsettled waiter of a reply's call; None (logged) for an unknown id."""
        waiter = self._pending.get(call_id)
        if waiter is None:
            log.debug("%s: reply for unknown id %r dropped", self.host_name, call_id)
            return None
        return None if waiter.ready() else waiter

    def _die(self, error: SessionError) -> None:
        if self.dead.is_set():
            return
        self.error = error
        self.dead.set()
        self._pong.set()
        in_flight = _may_have_run(error) if self._pending else error
        for waiter in list(self._pending.values()):
            if not waiter.ready():
                waiter.set_exception(in_flight)
        if not self._connected.ready():
            self._connected.set_exception(error)
        self._on_down(error)


def _may_have_run(error: SessionError) -> SessionError:
    """What a call whose request left gets when its connection drops: the server may have run it."""
    if not isinstance(error, ConnectionLost):
        return error
    return OutcomeUnknown(f"the request was sent and may have run; then {without_host(error)}", error.host)


class PendingCall:
    """A `start_call` (or `start_background`) on the wire: what `_pending` needs of an AsyncResult, settled inline."""

    __slots__ = ("_link", "_call_id", "_settle", "_done", "_background")

    def __init__(self, link: Link, call_id: RequestId, settle: Settle, background: bool = False) -> None:
        self._link, self._call_id, self._settle, self._done = link, call_id, settle, False
        self._background = background

    def ready(self) -> bool:
        return self._done

    def set(self, value: Any) -> None:
        if not self._done:
            self._done = True
            self._link._settled(self._call_id, self._settle, value, None, self._background)

    def set_exception(self, error: BaseException) -> None:
        if not self._done:
            self._done = True
            self._link._settled(self._call_id, self._settle, None, error, self._background)

    def cancel(self, error: SessionError) -> None:
        """Give up on the call (its deadline passed): settle it with `error` now."""
        self.set_exception(error)


class _Probe:
    """A probe's entry in `_pending`: nobody waits for it; it leaves when answered or when the link dies."""

    __slots__ = ("_pending", "_call_id")

    def __init__(self, pending: dict[RequestId, Any], call_id: RequestId) -> None:
        self._pending, self._call_id = pending, call_id

    def ready(self) -> bool:
        return False

    def set(self, value: Any) -> None:
        self._pending.pop(self._call_id, None)

    def set_exception(self, error: BaseException) -> None:
        self._pending.pop(self._call_id, None)
