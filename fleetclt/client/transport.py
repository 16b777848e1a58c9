"""One websocket over a gevent socket, with wsproto as the frame engine.

Speaks ws://, wss:// and ws+unix://PATH (the local middleware socket, with the
dummy handshake URL midclt uses). No monkey patching: gevent's socket and ssl
modules are used directly. Low-level errors (OSError, ssl errors, wsproto
errors) become fleetclt errors here and only here, each naming the host.
"""
from __future__ import annotations

import contextlib
import socket as pysocket
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import gevent
from gevent import socket, ssl
from gevent.lock import Semaphore
from wsproto import ConnectionType
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import CloseReason
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..errors import (
    GATEWAY_STATUSES,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    HandshakeError,
    ProtocolError,
    TLSError,
)
from ..protocol.endpoint import Endpoint
from ..protocol.frames import FrameSplitter, text_frame
from ..protocol.handshake import Accepted, ClientHandshake, HandshakeFailure, Refused
from .tls import TLSPolicy, check_pin

RECV_BYTES = 65536
_PLAIN_PORT_HINT = "; is the port plain ws:// rather than wss://?"
_TLS_PORT_HINT = "; is the port wss:// (TLS) rather than ws://?"
_TLS_RECORDS = (b"\x15", b"\x16")  # the first byte of a TLS alert or handshake record
# The largest message we assemble (text counted in characters). A reply over it is a
# broken or hostile server: we close with 1009 instead of growing without bound.
MAX_MESSAGE = 64 * 1024 * 1024
T = TypeVar("T")


class WebSocket:
    """A connected websocket: `receive()` from one reader greenlet, `send()` from any."""

    def __init__(self, host_name: str, sock: Any, trailing: bytes = b"") -> None:
        self.host_name, self._sock = host_name, sock
        self._ws = Connection(ConnectionType.CLIENT)
        self._send_lock = Semaphore()
        self._parts: list[Any] = []
        self._size = 0
        self.on_pong: Callable[[bytes], None] = lambda payload: None
        self.reads = 0  # socket reads so far: any data at all is proof that the peer is alive
        self.max_message = MAX_MESSAGE
        self.allow_binary = False  # echo clients (Autobahn) take bytes; TrueNAS never sends them
        self._splitter: FrameSplitter | None = FrameSplitter()  # None once a big frame hands over to wsproto
        self._pending: list[Any] = self._parse(trailing) if trailing else []  # frames sent with the 101
        # See _receive_bytes. TLS keeps whole records inside the SSL object, where a
        # readable socket says nothing, so a TLS socket always tries recv first.
        self._hub = gevent.get_hub()
        self._readable = None if isinstance(sock, ssl.SSLSocket) else self._hub.loop.io(sock.fileno(), 1)
        self._drained = False

    def fileno(self) -> int:
        """The socket's descriptor: a link polls it to see a close that arrived while it was idle."""
        return int(self._sock.fileno())

    def peer_certificate(self) -> bytes | None:
        """The server's certificate (DER) on a wss:// connection, checked or not; None without TLS.
        SCRAM binds the login to it (tls-server-end-point, docs/protocol.md §5)."""
        if not isinstance(self._sock, ssl.SSLSocket):
            return None
        der = self._sock.getpeercert(binary_form=True)
        return bytes(der) if der else None

    def send(self, text: str) -> None:
        """One text frame; encoded here while open (cheaper than wsproto's send), else by wsproto."""
        if self._ws.state is ConnectionState.OPEN:
            self._write(text_frame(text.encode()))
        else:
            self._write(self._frame(TextMessage(data=text)))

    def send_binary(self, data: bytes) -> None:
        self._write(self._frame(BytesMessage(data=data)))

    def ping(self, payload: bytes = b"") -> None:
        self._write(self._frame(Ping(payload=payload)))

    def _frame(self, event: Any) -> bytes:
        """Encode an event; once either side has started closing, sending is a lost connection.

        A server that closes right after the upgrade (1008: not on the allowlist) puts
        wsproto into REMOTE_CLOSING before the first call is sent.
        """
        try:
            return self._ws.send(event)
        except LocalProtocolError:
            close = next((e for e in self._pending if isinstance(e, CloseConnection)), None)
            detail = _close_detail(close.code, close.reason) if close else f"state {self._ws.state.name}"
            raise ConnectionLost(f"connection closed: {detail}", self.host_name) from None

    def receive(self) -> Any:
        """The next complete text message (bytes too with `allow_binary`); ConnectionLost at the end."""
        while True:
            while self._pending:
                event = self._pending.pop(0)
                if type(event) is str:  # a whole text message from the fast path
                    return event
                text = self._handle(event)
                if text is not None:
                    return text
            self._pending.extend(self._read_events())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame if we still can, then drop the socket."""
        if self._ws.state == ConnectionState.OPEN:
            with contextlib.suppress(ConnectionLost, LocalProtocolError):
                self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
        self._drop_socket()

    def _drop_socket(self) -> None:
        """Close our readiness watcher, then the socket; a reader waiting on it wakes and finds it closed.

        The watcher goes first so that no watcher of ours is left on an fd number
        the kernel may hand to the next connection (gevent does the same for its own).
        """
        watcher, self._readable = self._readable, None
        if watcher is not None:
            wake, args = watcher.callback, watcher.args
            watcher.close()
            if wake is not None:
                self._hub.loop.run_callback(wake, *args)
        self._sock.close()

    def _write(self, data: bytes) -> None:
        with self._send_lock:
            try:
                # One send() takes a whole small frame; gevent's sendall() costs a
                # getsockopt() and three Python layers per call, so only the rest goes there.
                sent = self._sock.send(data)
                if sent < len(data):
                    self._sock.sendall(memoryview(data)[sent:])
            except OSError as exc:
                raise ConnectionLost(f"send failed: {exc.strerror or exc}", self.host_name) from None

    def _receive_bytes(self) -> bytes:
        """What the socket holds; once a recv has emptied it, wait for readiness before the next one.

        gevent's recv tries first, and a call's reply is usually alone on its socket:
        every second recv failed with EAGAIN and raised and caught an exception in
        gevent (docs/performance.md §3).
        """
        readable = self._readable
        if self._drained and readable is not None:
            self._hub.wait(readable)
        try:
            data: bytes = self._sock.recv(RECV_BYTES)
        except OSError as exc:
            raise ConnectionLost(f"receive failed: {exc.strerror or exc}", self.host_name) from None
        self.reads += 1
        self._drained = 0 < len(data) < RECV_BYTES
        return data

    def _read_events(self) -> list[Any]:
        data = self._receive_bytes()
        if self._splitter is not None and data:
            return self._parse(data)
        if self._splitter is not None:  # the end of the stream: wsproto judges a frame cut short
            data, self._splitter = self._splitter.take_rest() + data, None
        return self._wsproto_events(data or None)

    def _parse(self, data: bytes) -> list[Any]:
        """Text messages decoded by the splitter; every other frame through wsproto, whole."""
        assert self._splitter is not None
        events: list[Any] = []
        for item in self._splitter.feed(data, self.max_message):
            if isinstance(item, str):
                events.append(item)
            else:
                events.extend(self._wsproto_events(item))
        if self._splitter.bypassed:
            self._splitter = None
        return events

    def _wsproto_events(self, data: bytes | None) -> list[Any]:
        try:
            self._ws.receive_data(data)
            return list(self._ws.events())
        except (RemoteProtocolError, LocalProtocolError) as exc:
            raise ProtocolError(f"websocket protocol error: {exc}", self.host_name) from None

    def _handle(self, event: Any) -> Any:
        if isinstance(event, TextMessage) or (isinstance(event, BytesMessage) and self.allow_binary):
            return self._assemble(event)
        if isinstance(event, Ping):
            self._write(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            self.on_pong(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            self._closed_by_peer(event)
        elif isinstance(event, BytesMessage):
            self._fail(CloseReason.UNSUPPORTED_DATA, "server sent a binary frame")
        return None

    def _assemble(self, event: Any) -> Any:
        """Join a fragmented message; past `max_message` the connection is failed with 1009."""
        self._parts.append(event.data)
        self._size += len(event.data)
        if self._size > self.max_message:
            self._parts, self._size = [], 0
            self._fail(CloseReason.MESSAGE_TOO_BIG, f"message larger than {self.max_message} bytes")
        if not event.message_finished:
            return None
        whole = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
        self._parts, self._size = [], 0
        return whole

    def _fail(self, code: int, reason: str) -> NoReturn:
        """We found the server at fault: say why with a close code (RFC 6455 7.1.7), then drop."""
        self.close(code, reason.encode()[:120].decode(errors="ignore"))
        raise ProtocolError(f"websocket protocol error: {reason} (closed with {code})", self.host_name)

    def _closed_by_peer(self, event: CloseConnection) -> None:
        if self._ws.state == ConnectionState.OPEN:  # wsproto's verdict on a bad frame, not the peer's close
            self._fail(int(event.code), event.reason or "invalid frame")
        if self._ws.state == ConnectionState.REMOTE_CLOSING:
            with contextlib.suppress(ConnectionLost):
                self._write(self._ws.send(event.response()))
        self._drop_socket()
        raise ConnectionLost(f"connection closed: {_close_detail(event.code, event.reason)}", self.host_name)


def _close_detail(code: int, reason: str | None) -> str:
    if code == CloseReason.ABNORMAL_CLOSURE:
        return "connection dropped without a close frame"
    return f"code {int(code)}" + (f" ({reason})" if reason else "")


def open_websocket(host_name: str, endpoint: Endpoint, tls: TLSPolicy, timeout: float) -> WebSocket:
    """Connect, run TLS (checking the pin before anything else is sent) and the upgrade."""
    sock, trailing = open_stream(host_name, endpoint, tls, timeout, lambda sock: _upgrade(host_name, sock, endpoint),
                                 "the websocket handshake")
    return WebSocket(host_name, sock, trailing)


def open_stream(host_name: str, endpoint: Endpoint, tls: TLSPolicy, timeout: float,
                greet: Callable[[Any], T], greeting: str) -> tuple[Any, T]:
    """Connect, run TLS for wss (the pin checked before anything is sent), then `greet(sock)`.

    All within `timeout`; the socket is closed on any failure, and a timeout
    says which step got no answer (`greeting` names the last one). The websocket
    greets with its upgrade, the HTTP file path (http.py) with its request.
    """
    steps = _Steps()
    timer = gevent.Timeout(timeout)
    try:
        with timer:
            sock = _connect(host_name, endpoint)
            try:
                if endpoint.scheme == "wss":
                    steps.now = "the TLS handshake"
                    sock = _start_tls(host_name, sock, endpoint, tls)
                steps.now = greeting
                answer = greet(sock)
            except BaseException:
                sock.close()
                raise
    except gevent.Timeout as exc:
        if exc is not timer:
            raise
        raise ConnectTimeout(steps.timed_out(timeout), host_name) from None
    except OSError as exc:
        raise ConnectError(_describe_os_error(exc), host_name) from None
    return sock, answer


class _Steps:
    """Which step of the connect is under way, so that a timeout says what got no answer."""

    now = ""

    def timed_out(self, timeout: float) -> str:
        if not self.now:
            return f"no connection within {timeout:g} s"
        return f"TCP connected, but {self.now} got no answer within {timeout:g} s"


def _connect(host_name: str, endpoint: Endpoint) -> Any:
    if endpoint.unix_path:
        return _connected(pysocket.AF_UNIX, endpoint.unix_path)
    family = _literal_family(endpoint.host)
    if family is None:
        sock = socket.create_connection((endpoint.host, endpoint.port))
    else:  # no resolver round trip through gevent's thread pool (docs/performance.md §4)
        sock = _connected(family, (endpoint.host, endpoint.port))
    sock.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_KEEPALIVE, 1)
    return sock


def _connected(family: int, address: Any) -> Any:
    """A stream socket connected to `address`; closed again if the connect fails or times out."""
    sock = socket.socket(family, pysocket.SOCK_STREAM)
    try:
        sock.connect(address)
    except BaseException:
        sock.close()
        raise
    return sock


def _literal_family(host: str) -> int | None:
    """AF_INET or AF_INET6 when `host` is an address literal; None for a name to resolve."""
    for family in (pysocket.AF_INET, pysocket.AF_INET6):
        try:
            pysocket.inet_pton(family, host)
            return family
        except OSError:
            pass
    return None


def _start_tls(host_name: str, sock: Any, endpoint: Endpoint, tls: TLSPolicy) -> Any:
    try:
        wrapped = tls.context().wrap_socket(sock, server_hostname=endpoint.host)
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"certificate rejected ({exc.verify_message}); TrueNAS ships a self-signed "
                       "certificate: pin it with tls_fingerprint (fleetclt fingerprint URI prints it) "
                       "or give its CA with ca_file", host_name) from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS handshake failed: {exc.reason or exc}{_PLAIN_PORT_HINT}", host_name) from None
    except (ConnectionResetError, BrokenPipeError):  # a plain server reading a ClientHello as HTTP hangs up
        raise TLSError(f"TLS handshake failed: connection reset{_PLAIN_PORT_HINT}", host_name) from None
    try:
        check_pin(host_name, wrapped.getpeercert(binary_form=True), tls.fingerprint)
    except TLSError:
        wrapped.close()  # it owns the fd now: closing the plain socket would leave it open
        raise
    return wrapped


def _upgrade(host_name: str, sock: Any, endpoint: Endpoint) -> bytes:
    """The HTTP upgrade; returns the bytes the server sent after its 101 (frames, if it spoke first)."""
    handshake = ClientHandshake(endpoint.netloc, endpoint.target)
    hint = _TLS_PORT_HINT if endpoint.scheme == "ws" and not endpoint.unix_path else ""
    try:
        sock.sendall(handshake.request())
    except (ConnectionResetError, BrokenPipeError):
        raise ConnectError(f"connection reset during the websocket handshake{hint}", host_name) from None
    while True:
        try:
            data = sock.recv(RECV_BYTES)
        except ConnectionResetError:  # a TLS server hangs up on a plain HTTP request
            raise ConnectError(f"connection reset during the websocket handshake{hint}", host_name) from None
        if not data:
            raise ConnectError(f"connection closed during the websocket handshake{hint}", host_name)
        if hint and data[:1] in _TLS_RECORDS:
            raise HandshakeError(f"the server answered in TLS{hint}", host_name)
        try:
            verdict = handshake.receive(data)
        except HandshakeFailure as exc:
            raise HandshakeError(f"bad websocket handshake: {exc}", host_name) from None
        if isinstance(verdict, Accepted):
            return verdict.trailing
        if isinstance(verdict, Refused):
            where = f" to {verdict.location}" if verdict.location else ""
            if verdict.status in GATEWAY_STATUSES:
                where = ": the web server is up, the middleware behind it is not (restarting?)"
            raise HandshakeError(f"websocket upgrade refused with HTTP {verdict.status}{where}", host_name,
                                 status=verdict.status, location=verdict.location)


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, pysocket.gaierror):
        return f"name lookup failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"connect failed: {exc.strerror or exc}"
