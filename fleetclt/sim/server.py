"""The HTTP/websocket front of a simulated host, on gevent-websocket.

Routes: GET /api/current and /api/vX.Y.Z (JSON-RPC; only the versions the
host's release ships, see versions.py), GET /websocket (legacy DDP), GET
/api/versions and /api/boot_id (plain JSON), GET /_download/<job id> (a
job's file, http_files.py), POST /_upload (a file into a job, http_upload.py). A 24.10 host answers an upgrade to
/api/current with a redirect to /ui/, as old hosts do. The known
gevent-websocket defects are fixed here: byte-by-byte unmasking (replaced by a
big-int XOR), UTF-8 validation by a Python loop per byte (replaced by the C
codec), `str` bodies on error paths (encoded), an uncaught
binascii.Error on a bad key (400), close frames sent without their status
code, and the reverse DNS lookup per listener (SERVER_NAME is given).

With `HostConfig.nginx` the TCP front also behaves as the nginx of a real host
towards an upgraded websocket (see NginxTunnel): it cuts one that carried
nothing for its idle limit, 60 s before 26.0-BETA.2 and 3600 s from it.
"""
from __future__ import annotations

import binascii
import codecs
import logging
import os
import re
import socket
import struct
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import gevent
from gevent import ssl
from gevent.pywsgi import WSGIHandler
from geventwebsocket import websocket as gws
from geventwebsocket.exceptions import WebSocketError
from geventwebsocket.handler import WebSocketHandler
from geventwebsocket.server import WebSocketServer
from geventwebsocket.websocket import Header, WebSocket

from ..protocol import ejson
from .config import version_tuple
from .ddp import DdpConnection
from .http_files import serve_download
from .http_upload import serve_upload
from .rpc import RpcConnection
from .versions import UNLISTED, served_api_versions

if TYPE_CHECKING:
    from .host import SimHost

log = logging.getLogger(__name__)

LISTEN_BACKLOG = 1024
StartResponse = Callable[..., Any]
# proxy_read_timeout on /api and /websocket: unset (nginx's default, 60 s) up to
# 26.0-BETA.1, 3600 from 26.0-BETA.2 (etc_files/local/nginx/nginx.conf.mako).
NGINX_DEFAULT_IDLE, NGINX_26_IDLE = 60.0, 3600.0
_PRERELEASE = re.compile(r"-(BETA|RC)\.(\d+)")
# nginx's own page for an upstream that refuses the connection (no error_page in nginx.conf.mako).
NGINX_502 = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
             b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def nginx_idle_limit(version: str) -> float:
    """Seconds of silence after which the host's nginx closes a websocket tunnel."""
    numbers = version_tuple(version)
    if numbers[:2] < (26, 0):
        return NGINX_DEFAULT_IDLE
    stage = _PRERELEASE.search(version)
    early_beta = numbers[:3] == (26, 0, 0) and stage is not None and stage[1] == "BETA" and int(stage[2]) < 2
    return NGINX_DEFAULT_IDLE if early_beta else NGINX_26_IDLE


class NginxTunnel:
    """The byte stream of an upgraded websocket as nginx relays it, with its idle timer.

    nginx re-arms proxy_read_timeout on every pass over an upgraded connection,
    whichever way the bytes went, pings and pongs included (nginx
    src/http/ngx_http_upstream.c, ngx_http_upstream_process_upgraded). When it
    fires nginx finalizes the request: both TCP connections close, with no
    websocket close frame. Installed as gevent-websocket's stream, so every
    frame either way passes through `read` and `write`.
    """

    __slots__ = ("_read", "_write", "_clock", "last")

    def __init__(self, ws: WebSocket, host: SimHost) -> None:
        self._read, self._write, self._clock = ws.raw_read, ws.raw_write, host.clock
        self.last = host.clock.now()
        ws.stream, ws.raw_read, ws.raw_write = self, self.read, self.write

    def read(self, size: int) -> bytes:
        data: bytes = self._read(size)
        self.last = self._clock.now()
        return data

    def write(self, data: bytes) -> None:
        self._write(data)
        self.last = self._clock.now()

    def watch(self, conn: Any, limit: float) -> None:
        """Cut `conn` once nothing went either way for `limit` simulated seconds."""
        while not conn.closed:
            remaining = self.last + limit - self._clock.now()
            if remaining <= 0:
                log.debug("%s: nginx closed a websocket idle for %g s", conn.host.name, limit)
                conn.drop()
                return
            self._clock.sleep(remaining)


def _xor_unmask(self: Header, payload: bytes) -> bytes:
    """Unmask a client frame in one big-int XOR instead of a Python loop per byte."""
    length = len(payload)
    if not length:
        return b""
    mask = (bytes(self.mask) * (length // 4 + 1))[:length]
    value = int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")
    return value.to_bytes(length, "big")


def _close(self: WebSocket, code: int = 1000, message: bytes | str | None = b"") -> None:
    """Send a close frame that carries its status code (0.10.1 sends only the reason)."""
    if self.closed:
        return
    reason = message.encode() if isinstance(message, str) else bytes(message or b"")
    try:
        self.send_frame(struct.pack("!H", code) + reason, self.OPCODE_CLOSE)
    except WebSocketError:
        pass  # the peer is gone already; the socket is closed by the handler
    finally:
        self.closed = True
        self.stream = self.raw_write = self.raw_read = self.environ = None


class _Utf8Check:
    """gevent-websocket's validator interface on the C codec, still checked frame by frame.

    Its own validator walks a DFA in Python for every byte, twice per message:
    15 % of the simulator's CPU under a 1,000-host fan-out.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()

    def reset(self) -> None:
        self._decoder.reset()

    def validate(self, data: bytes) -> tuple[bool, bool, int, int]:
        """(valid, ends on a code point, index, index), as Utf8Validator answers."""
        try:
            self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            return False, False, exc.start, exc.start
        return True, True, len(data), len(data)


Header.mask_payload = Header.unmask_payload = _xor_unmask
WebSocket.close = _close
gws.Utf8Validator = _Utf8Check


class SimHandler(WebSocketHandler):
    """Refuses upgrades the way a given host version or fault says, then upgrades."""

    def run_application(self) -> None:
        host: SimHost = self.server.sim_host
        if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket" and host_refuses(host, self.environ):
            WSGIHandler.run_application(self)
            return
        super().run_application()

    def upgrade_websocket(self) -> Any:
        try:
            result = super().upgrade_websocket()
        except binascii.Error:
            self.start_response("400 Bad Request", [])
            return [b"Invalid Sec-WebSocket-Key"]
        return [r.encode() if isinstance(r, str) else r for r in result] if result else result

    def run_websocket(self) -> None:
        """Hand the socket to the app; no shared client table (it breaks on Unix sockets)."""
        try:
            list(self.application(self.environ, lambda *args: []))
        finally:
            websocket: Any = getattr(self, "websocket")  # noqa: B009  (set by gevent-websocket, untyped)
            if not websocket.closed:
                websocket.close()
            self.environ["wsgi.websocket"] = None
            self.websocket = None

    def log_request(self) -> None:
        log.debug("%s", self.format_request())


def host_refuses(host: SimHost, environ: dict[str, Any]) -> bool:
    """True when this upgrade must get a plain HTTP answer instead of 101."""
    path = environ.get("PATH_INFO", "")
    if host.faults.handshake_status or middleware_down(host, path):
        return True
    if path == "/websocket":
        return False
    return host.config.legacy_only or not _is_api_path(path, host.config.version)


def middleware_down(host: SimHost, path: str) -> bool:
    """nginx proxies this path, and no middleware listens behind it (a restart's downtime).

    nginx.conf.mako: /websocket always goes to 127.0.0.1:6000; /api only from 25.04
    (24.10's `location /` redirects /api/current to /ui/ itself, middleware or not).
    """
    if host.middleware_up.is_set() or host.config.unix_path:
        return False
    return path.startswith("/websocket") or (path.startswith("/api") and not host.config.legacy_only)


def _is_api_path(path: str, host_version: str) -> bool:
    return path == "/api/current" or path.removeprefix("/api/") in served_api_versions(host_version)


class SimServer:
    """The listener of one host (TCP, optional TLS, or a Unix socket)."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self._server: WebSocketServer | None = None

    @property
    def port(self) -> int:
        return self.host.config.port

    @property
    def listening(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Listen; after a stop the same port is taken again, so clients can come back."""
        config = self.host.config
        ssl_args = {"ssl_context": self._tls_context()} if config.certfile else {}
        server = WebSocketServer(self._listener(), self._app, handler_class=SimHandler,
                                 environ={"SERVER_NAME": config.address}, log=None,
                                 error_log=logging.getLogger("fleetclt.sim.http"), **ssl_args)
        server.sim_host = self.host
        server.start()
        self._server = server
        if not config.unix_path and not config.port:
            self.host.config = replace(config, port=server.server_port)

    def _tls_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.host.config.certfile or "", self.host.config.keyfile)
        return context

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(timeout=0)
            self._server = None

    def _listener(self) -> socket.socket:
        config = self.host.config
        if config.unix_path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            if os.path.exists(config.unix_path):
                os.unlink(config.unix_path)
            sock.bind(config.unix_path)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            # Replies go out at once, as the real host's do: nginx has tcp_nodelay on, and
            # middlewared's aiohttp sets TCP_NODELAY on every connection. Without it, Nagle and
            # the peer's delayed ACK held a second reply ~40 ms. Accepted sockets inherit it.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((config.address, config.port))
        sock.listen(LISTEN_BACKLOG)
        sock.setblocking(False)
        return sock

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        ws = environ.get("wsgi.websocket")
        if ws is None:
            return self._http(environ, start_response)
        self._serve_websocket(ws, environ)
        return []

    def _serve_websocket(self, ws: Any, environ: dict[str, Any]) -> None:
        host = self.host
        legacy = environ.get("PATH_INFO") == "/websocket"
        conn = (DdpConnection if legacy else RpcConnection)(host, ws, environ)
        host.attach(conn)
        watchdog = None
        if host.config.nginx and not host.config.unix_path:
            tunnel = NginxTunnel(ws, host)
            watchdog = gevent.spawn(tunnel.watch, conn, nginx_idle_limit(host.config.version))
        try:
            if host.faults.close_on_connect:
                conn.close(host.faults.close_on_connect, "You are not allowed to access this resource")
                return
            conn.serve()
        finally:
            if watchdog is not None:
                watchdog.kill(block=False)
            host.detach(conn)

    def _http(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        host, path = self.host, environ.get("PATH_INFO", "")
        status = host.faults.handshake_status
        if status:
            return _redirect(start_response, status, "https://" + host.address + path)
        if middleware_down(host, path):
            host.counters.bad_gateway += 1
            start_response("502 Bad Gateway", [("Content-Type", "text/html")])
            return [NGINX_502]
        if host.config.legacy_only and path.startswith("/api"):
            return _redirect(start_response, 302, "/ui/")
        if path == "/api/versions":
            return _json(start_response, [v for v in served_api_versions(host.config.version) if v != UNLISTED])
        if path == "/api/boot_id":
            return _json(start_response, host.boot_id)
        if path.startswith("/_download"):
            return serve_download(host, environ, start_response)
        if path.startswith("/_upload"):
            return serve_upload(host, environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"404: Not Found"]


def _redirect(start_response: StartResponse, status: int, location: str) -> list[bytes]:
    reason = {301: "Moved Permanently", 302: "Found", 307: "Temporary Redirect",
              404: "Not Found"}.get(status, "Error")
    headers = [("Content-Type", "text/html")]
    if status in (301, 302, 307, 308):
        headers.append(("Location", location))
    start_response(f"{status} {reason}", headers)
    return [f"<html><body>{status} {reason}</body></html>".encode()]


def _json(start_response: StartResponse, value: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [ejson.dumps(value).encode()]
