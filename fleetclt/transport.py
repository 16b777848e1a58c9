"""One websocket over a gevent socket, with wsproto as the frame engine.

Layer: transport; imports fleetclt.errors and fleetclt.tls; gevent, wsproto.

Speaks ws://, wss:// and ws+unix://PATH (the local middleware socket, with the
dummy handshake URL midclt uses). No monkey patching: gevent's socket and ssl
modules are used directly. Low-level errors (OSError, ssl errors, wsproto
errors) become fleetclt errors here and only here, each naming the host.
"""
from __future__ import annotations

import socket as pysocket
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import gevent
from gevent import socket, ssl
from gevent.lock import Semaphore
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (AcceptConnection, BytesMessage, CloseConnection, Ping, Pong,
                            RejectConnection, RejectData, Request, TextMessage)
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from .errors import (ConnectError, ConnectionLost, ConnectTimeout, HandshakeError, ProtocolError,
                     TLSError)
from .tls import TLSPolicy, check_pin

RECV_BYTES = 65536
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
    def parse(cls, uri: str) -> "Endpoint":
        parts = urlsplit(uri)
        if parts.scheme == "ws+unix":
            return cls("ws", UNIX_HANDSHAKE_HOST, 0, UNIX_HANDSHAKE_PATH, unix_path=parts.netloc + parts.path)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"not a websocket uri: {uri!r} (use ws://, wss:// or ws+unix://)")
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path or "/")

    def with_path(self, path: str) -> "Endpoint":
        return Endpoint(self.scheme, self.host, self.port, path, self.unix_path)

    @property
    def netloc(self) -> str:
        default = 443 if self.scheme == "wss" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default or self.unix_path else f"{host}:{self.port}"


class WebSocket:
    """A connected websocket: `receive()` from one reader greenlet, `send()` from any."""

    def __init__(self, host_name: str, sock: Any, ws: WSConnection, pending: list[Any]) -> None:
        self.host_name, self._sock, self._ws = host_name, sock, ws
        self._send_lock = Semaphore()
        self._pending = pending
        self._parts: list[str] = []
        self.close_code: int | None = None
        self.on_pong: Callable[[bytes], None] = lambda payload: None

    def send(self, text: str) -> None:
        self._write(self._ws.send(TextMessage(data=text)))

    def ping(self, payload: bytes = b"") -> None:
        self._write(self._ws.send(Ping(payload=payload)))

    def receive(self) -> str:
        """The next complete text message; raises ConnectionLost when the socket ends."""
        while True:
            while self._pending:
                text = self._handle(self._pending.pop(0))
                if text is not None:
                    return text
            self._pending.extend(self._read_events())

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Send a close frame if we still can, then drop the socket."""
        if self._ws.state == ConnectionState.OPEN:
            try:
                self._write(self._ws.send(CloseConnection(code=code, reason=reason)))
            except (ConnectionLost, LocalProtocolError):
                pass
        self._sock.close()

    def _write(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self._sock.sendall(data)
            except OSError as exc:
                raise ConnectionLost(f"send failed: {exc.strerror or exc}", self.host_name) from None

    def _read_events(self) -> list[Any]:
        try:
            data = self._sock.recv(RECV_BYTES)
        except OSError as exc:
            raise ConnectionLost(f"receive failed: {exc.strerror or exc}", self.host_name) from None
        try:
            self._ws.receive_data(data or None)
            return list(self._ws.events())
        except (RemoteProtocolError, LocalProtocolError) as exc:
            raise ProtocolError(f"websocket protocol error: {exc}", self.host_name) from None

    def _handle(self, event: Any) -> str | None:
        if isinstance(event, TextMessage):
            self._parts.append(event.data)
            if not event.message_finished:
                return None
            text, self._parts = "".join(self._parts), []
            return text
        if isinstance(event, Ping):
            self._write(self._ws.send(event.response()))
        elif isinstance(event, Pong):
            self.on_pong(bytes(event.payload))
        elif isinstance(event, CloseConnection):
            self._closed_by_peer(event)
        elif isinstance(event, BytesMessage):
            raise ProtocolError("server sent a binary frame", self.host_name)
        return None

    def _closed_by_peer(self, event: CloseConnection) -> None:
        self.close_code = event.code
        if self._ws.state == ConnectionState.REMOTE_CLOSING:
            try:
                self._write(self._ws.send(event.response()))
            except ConnectionLost:
                pass
        self._sock.close()
        detail = f"code {int(event.code)}" + (f" ({event.reason})" if event.reason else "")
        if int(event.code) == 1006:
            detail = "connection dropped without a close frame"
        raise ConnectionLost(f"connection closed: {detail}", self.host_name)


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
        sock = socket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
        try:
            sock.connect(endpoint.unix_path)
        except OSError:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((endpoint.host, endpoint.port))
    sock.setsockopt(pysocket.IPPROTO_TCP, pysocket.TCP_NODELAY, 1)
    sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_KEEPALIVE, 1)
    return sock


def _start_tls(host_name: str, sock: Any, endpoint: Endpoint, tls: TLSPolicy) -> Any:
    try:
        wrapped = tls.context().wrap_socket(sock, server_hostname=endpoint.host)
    except ssl.SSLCertVerificationError as exc:
        raise TLSError(f"certificate rejected ({exc.verify_message}); TrueNAS ships a self-signed "
                       "certificate: pin it with tls_fingerprint (fleetclt fingerprint URI prints it) "
                       "or give its CA with ca_file", host_name) from None
    except ssl.SSLError as exc:
        raise TLSError(f"TLS handshake failed: {exc.reason or exc}", host_name) from None
    check_pin(host_name, wrapped.getpeercert(binary_form=True), tls.fingerprint)
    return wrapped


def _upgrade(host_name: str, sock: Any, endpoint: Endpoint) -> tuple[WSConnection, list[Any]]:
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
                return ws, events[index + 1:]
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
