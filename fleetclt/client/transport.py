"""One websocket over a gevent socket, with wsproto as the frame engine.

Speaks ws://, wss:// and ws+unix://PATH (the local middleware socket, with the
dummy handshake URL midclt uses). No monkey patching: gevent's socket and ssl
modules are used directly. Low-level errors (OSError, ssl errors, wsproto
errors) become fleetclt errors here and only here, each naming the host.
"""
from __future__ import annotations

import contextlib
import os
import socket as pysocket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gevent
from gevent import socket, ssl
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection, ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..errors import ConnectError, ConnectionLost, ConnectTimeout, HandshakeError, ProtocolError, TLSError
from .tls import TLSPolicy, check_pin

RECV_BYTES = 65536
# The largest message we assemble (text counted in characters). A reply over it is a
# broken or hostile server: we close with 1009 instead of growing without bound.
MAX_MESSAGE = 64 * 1024 * 1024
UNIX_HANDSHAKE_HOST, UNIX_HANDSHAKE_PATH = "localhost", "/api/current"  # what midclt sends


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and what to ask for in the upgrade request."""

    scheme: str
    host: str
    port: int
    target: str
    unix_path: str | None = None

    @classmethod
    def parse(cls, uri: str) -> Endpoint:
        parts = urlsplit(uri)
        if parts.scheme == "ws+unix":
            return cls("ws", UNIX_HANDSHAKE_HOST, 0, UNIX_HANDSHAKE_PATH, unix_path=parts.netloc + parts.path)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a websocket uri: {uri!r} (use ws://, wss:// or ws+unix://)")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        query = f"?{parts.query}" if parts.query else ""  # kept: a proxy or test server may route on it
        return cls(parts.scheme, parts.hostname, port, (parts.path or "/") + query)

    def with_path(self, path: str) -> Endpoint:
        return Endpoint(self.scheme, self.host, self.port, path, self.unix_path)

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "wss" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default or self.unix_path else f"{host}:{self.port}"


def text_frame(payload: bytes) -> bytes:
    """A complete, masked client text frame (RFC 6455 5.2-5.3), as wsproto would build it.

    Sending whole messages only leaves wsproto's state untouched, so both
    encoders can share one connection. The mask comes from os.urandom as the RFC
    asks; the XOR is one big-int operation instead of per-byte work.
    """
    size = len(payload)
    if size < 126:
        header = _SHORT_HEADER.pack(0x81, 0x80 | size)
    elif size < 65536:
        header = _MEDIUM_HEADER.pack(0x81, 0xFE, size)
    else:
        header = _LONG_HEADER.pack(0x81, 0xFF, size)
    key = _masking_keys.take()
    mask = int.from_bytes((key * (size // 4 + 1))[:size], "big")
    return header + key + (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")


class _MaskingKeys:
    """4-byte masking keys cut from one os.urandom read per 1,024 frames, not a getrandom call per
    frame (docs/performance.md §3); still the strong source RFC 6455 10.3 asks for."""

    BATCH = 4096

    def __init__(self) -> None:
        self._pool, self._next = b"", 0

    def take(self) -> bytes:
        start = self._next
        if start >= len(self._pool):
            self._pool, start = os.urandom(self.BATCH), 0
        self._next = start + 4
        return self._pool[start:start + 4]


_masking_keys = _MaskingKeys()


_SHORT_HEADER, _MEDIUM_HEADER, _LONG_HEADER = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")
FAST_FRAME_LIMIT = 1 << 20  # frames up to this size are decoded whole by WebSocket._split_frames


def frame_bounds(data: bytes, start: int) -> tuple[int, int] | None:
    """(payload start, frame end) of the frame at `start`; None while its header is incomplete.

    The end may lie beyond `data`: the frame is then still arriving.
    """
    if len(data) - start < 2:
        return None
    second = data[start + 1]
    length, position = second & 0x7F, start + 2
    if length >= 126:
        width = 2 if length == 126 else 8
        if len(data) < position + width:
            return None
        length = int.from_bytes(data[position:position + width], "big")
        position += width
    if second & 0x80:  # masked: servers must not, wsproto will say so
        position += 4
    return position, position + length


def _wsproto_idle(ws: Connection, pending: list[Any]) -> bool:
    """True when nothing arrived after the upgrade response: wsproto holds no part of a frame.

    A server that speaks first (an echo test server, not TrueNAS) may leave half
    a frame in wsproto's decoder; that connection then stays on wsproto's parser.
    """
    try:
        decoder = ws._proto._frame_decoder
        return not pending and len(decoder.buffer) == 0 and decoder.header is None
    except AttributeError:
        return False  # another wsproto version: stay on its parser


class WebSocket:
    """A connected websocket: `receive()` from one reader greenlet, `send()` from any."""

    def __init__(self, host_name: str, sock: Any, ws: Connection, pending: list[Any]) -> None:
        self.host_name, self._sock, self._ws = host_name, sock, ws
        self._send_lock = Semaphore()
        self._pending = pending
        self._parts: list[Any] = []
        self._size = 0
        self.close_code: int | None = None
        self.on_pong: Callable[[bytes], None] = lambda payload: None
        self.max_message = MAX_MESSAGE
        self.allow_binary = False  # echo clients (Autobahn) take bytes; TrueNAS never sends them
        self._fast = _wsproto_idle(ws, pending)  # see _split_frames
        self._rest = b""
        self._mid_message = False
        # See _receive_bytes. TLS keeps whole records inside the SSL object, where a
        # readable socket says nothing, so a TLS socket always tries recv first.
        self._hub = gevent.get_hub()
        self._readable = None if isinstance(sock, ssl.SSLSocket) else self._hub.loop.io(sock.fileno(), 1)
        self._drained = False

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
            data = self._sock.recv(RECV_BYTES)
        except OSError as exc:
            raise ConnectionLost(f"receive failed: {exc.strerror or exc}", self.host_name) from None
        self._drained = 0 < len(data) < RECV_BYTES
        return data

    def _read_events(self) -> list[Any]:
        data = self._receive_bytes()
        try:
            if self._fast and data:
                return self._split_frames(self._rest + data if self._rest else data)
            if self._rest:
                self._ws.receive_data(self._rest)
                self._rest = b""
            self._ws.receive_data(data or None)
            return list(self._ws.events())
        except (RemoteProtocolError, LocalProtocolError) as exc:
            raise ProtocolError(f"websocket protocol error: {exc}", self.host_name) from None

    def _split_frames(self, data: bytes) -> list[Any]:
        """Whole frames out of `data`: plain text frames decoded here, the rest through wsproto.

        Why: wsproto's parser is costly per small message (docs/performance.md §3). A complete,
        unfragmented, unmasked text frame up to FAST_FRAME_LIMIT (and `max_message`) is decoded here
        (strict UTF-8) and comes out as a str; every other complete frame
        (control, fragment, invalid UTF-8, reserved bits) is fed to wsproto whole,
        so its buffer is always empty between frames and its verdicts and close
        codes stay exactly as before. A bigger frame switches the connection to
        wsproto for good, which streams it and enforces `max_message`.
        """
        events: list[Any] = []
        start = 0
        while (bounds := frame_bounds(data, start)) is not None:
            body, end = bounds
            if end - body > min(FAST_FRAME_LIMIT, self.max_message):
                self._fast = False
                self._ws.receive_data(data[start:])
                self._rest = b""
                return events + list(self._ws.events())
            if end > len(data):
                break
            events.extend(self._one_frame(data, start, body, end))
            start = end
        self._rest = data[start:]
        return events

    def _one_frame(self, data: bytes, start: int, body: int, end: int) -> list[Any]:
        first = data[start]
        if first == 0x81 and not self._mid_message and not data[start + 1] & 0x80:
            try:
                return [data[body:end].decode()]
            except UnicodeDecodeError:
                pass  # wsproto fails the connection with 1007
        if first & 0x0F < 3:  # a data frame: continuation, text or binary
            self._mid_message = not first & 0x80
        self._ws.receive_data(data[start:end])
        return list(self._ws.events())

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
            self._fail(1003, "server sent a binary frame")
        return None

    def _assemble(self, event: Any) -> Any:
        """Join a fragmented message; past `max_message` the connection is failed with 1009."""
        self._parts.append(event.data)
        self._size += len(event.data)
        if self._size > self.max_message:
            self._parts, self._size = [], 0
            self._fail(1009, f"message larger than {self.max_message} bytes")
        if not event.message_finished:
            return None
        whole = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
        self._parts, self._size = [], 0
        return whole

    def _fail(self, code: int, reason: str) -> None:
        """We found the server at fault: say why with a close code (RFC 6455 7.1.7), then drop."""
        self.close(code, reason.encode()[:120].decode(errors="ignore"))
        raise ProtocolError(f"websocket protocol error: {reason} (closed with {code})", self.host_name)

    def _closed_by_peer(self, event: CloseConnection) -> None:
        if self._ws.state == ConnectionState.OPEN:  # wsproto's verdict on a bad frame, not the peer's close
            self._fail(int(event.code), event.reason or "invalid frame")
        self.close_code = event.code
        if self._ws.state == ConnectionState.REMOTE_CLOSING:
            with contextlib.suppress(ConnectionLost):
                self._write(self._ws.send(event.response()))
        self._drop_socket()
        raise ConnectionLost(f"connection closed: {_close_detail(event.code, event.reason)}", self.host_name)


def _close_detail(code: int, reason: str | None) -> str:
    if int(code) == 1006:
        return "connection dropped without a close frame"
    return f"code {int(code)}" + (f" ({reason})" if reason else "")


def open_websocket(host_name: str, endpoint: Endpoint, tls: TLSPolicy, timeout: float) -> WebSocket:
    """Connect, run TLS (checking the pin before anything else is sent) and the upgrade."""
    try:
        with gevent.Timeout(timeout, ConnectTimeout(f"no connection within {timeout:g} s", host_name)):
            sock = _connect(host_name, endpoint)
            try:
                if endpoint.scheme == "wss":
                    sock = _start_tls(host_name, sock, endpoint, tls)
                ws, pending = _upgrade(host_name, sock, endpoint)
            except BaseException:
                sock.close()
                raise
    except OSError as exc:
        raise ConnectError(_describe_os_error(exc), host_name) from None
    return WebSocket(host_name, sock, ws, pending)


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
        raise TLSError(f"TLS handshake failed: {exc.reason or exc}", host_name) from None
    try:
        check_pin(host_name, wrapped.getpeercert(binary_form=True), tls.fingerprint)
    except TLSError:
        wrapped.close()  # it owns the fd now: closing the plain socket would leave it open
        raise
    return wrapped


def _upgrade(host_name: str, sock: Any, endpoint: Endpoint) -> tuple[Connection, list[Any]]:
    """The upgrade; returns the frame protocol alone (the HTTP handshake's ~20 objects per
    session, h11 state and all, would otherwise live as long as the connection)."""
    ws = WSConnection(ConnectionType.CLIENT)
    sock.sendall(ws.send(Request(host=endpoint.netloc, target=endpoint.target)))
    while True:
        data = sock.recv(RECV_BYTES)
        if not data:
            raise ConnectError("connection closed during the websocket handshake", host_name)
        try:
            ws.receive_data(data)
            events = list(ws.events())
        except RemoteProtocolError as exc:
            raise HandshakeError(f"bad websocket handshake: {exc}", host_name) from None
        for index, event in enumerate(events):
            if isinstance(event, AcceptConnection):
                assert ws.connection is not None  # wsproto sets it with AcceptConnection
                return ws.connection, events[index + 1:]
            if isinstance(event, RejectConnection):
                _reject(host_name, event)
            if isinstance(event, RejectData):
                continue


def _reject(host_name: str, event: RejectConnection) -> None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in event.headers}
    location = headers.get("location", "")
    where = f" to {location}" if location else ""
    raise HandshakeError(f"websocket upgrade refused with HTTP {event.status_code}{where}", host_name,
                         status=event.status_code, location=location)


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, pysocket.gaierror):
        return f"name lookup failed: {exc.strerror}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return f"connect failed: {exc.strerror or exc}"
