"""A fault-injecting TCP proxy on loopback, for tests: faults in real sockets, not mocks.

Toxiproxy cannot be installed here and `tc netem` is missing, so faults are made
in-process: a gevent StreamServer on 127.0.0.1:0 in front of one target, with
two forwarding greenlets per connection (modelled on gevent's portforwarder
example). Faults are switched on a live proxy and apply per direction where
that makes sense ("up" is client -> target, "down" is target -> client).

Every socket and greenlet the proxy makes is tracked and closed by `close()`,
so tests can assert that *fleetclt* leaves nothing open.
"""
from __future__ import annotations

import contextlib
import socket as pysocket
import struct
from dataclasses import dataclass, field
from typing import Any

import gevent
from gevent import socket
from gevent.event import Event
from gevent.pool import Pool
from gevent.server import StreamServer

CHUNK = 16384
UP, DOWN = "up", "down"


@dataclass
class ProxyFaults:
    """Switches; change them while the proxy runs. Offsets count bytes sent down by the whole proxy
    (`FaultProxy.down_bytes`), so a test can aim at "the next reply" with `down_bytes + n`."""

    latency: float = 0.0                      # seconds added before each forwarded chunk
    bandwidth: int | None = None              # bytes per second per direction, sent in small pieces
    blackhole: bool = False                   # accept, never connect upstream, never answer
    reset_after: int | None = None            # RST both ends once this many bytes went down
    half_open: str | None = None              # UP or DOWN: silently stop forwarding that way
    truncate_after: int | None = None         # forward this many bytes down, then close cleanly
    flip_after: int | None = None             # XOR 0xFF into the byte at this offset going down
    directions: frozenset[str] = field(default_factory=lambda: frozenset({UP, DOWN}))


class FaultProxy:
    """One listener in front of (host, port); `address` is where clients connect."""

    def __init__(self, target: tuple[str, int], faults: ProxyFaults | None = None) -> None:
        self.target = target
        self.faults = faults or ProxyFaults()
        self.connections = 0
        self.down_bytes = 0
        self._sockets: set[Any] = set()
        self._greenlets: set[gevent.Greenlet] = set()
        self._handlers = Pool()
        self._server = StreamServer(("127.0.0.1", 0), self._handle, spawn=self._handlers)
        self._port = 0
        self._stopped = Event()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self._port)

    def uri(self, scheme: str = "ws", path: str = "/api/current") -> str:
        return f"{scheme}://127.0.0.1:{self._port}{path}"

    def start(self) -> FaultProxy:
        self._server.start()
        self._port = self._server.server_port
        return self

    def close(self) -> None:
        """Stop listening, kill forwarders and close every socket made here."""
        self._stopped.set()
        self._server.close()
        gevent.killall(list(self._greenlets), block=True, timeout=2)
        self._handlers.kill(block=True, timeout=2)
        for sock in list(self._sockets):
            sock.close()
        self._sockets.clear()

    # -- per connection ---------------------------------------------------------
    def _handle(self, client: Any, _address: Any) -> None:
        """Runs in the StreamServer's greenlet for one accepted connection."""
        self.connections += 1
        self._track(client)
        try:
            if self.faults.blackhole:
                self._stopped.wait()  # hold the socket open, say nothing
                return
            upstream = self._connect_upstream()
            if upstream is None:
                return
            self._pump(client, upstream)
        finally:
            client.close()

    def _connect_upstream(self) -> Any:
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            return None
        upstream.settimeout(None)
        return self._track(upstream)

    def _pump(self, client: Any, upstream: Any) -> None:
        up = self._spawn(self._forward, client, upstream, UP)
        down = self._spawn(self._forward, upstream, client, DOWN)
        try:
            gevent.joinall([up, down], count=1)
            # one side ended: let the other drain briefly, then cut both (bounded)
            gevent.joinall([up, down], timeout=0.5)
        finally:
            gevent.killall([up, down], block=True, timeout=1)
            upstream.close()

    def _spawn(self, func: Any, *args: Any) -> gevent.Greenlet:
        greenlet = gevent.spawn(func, *args)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return greenlet

    def _track(self, sock: Any) -> Any:
        self._sockets.add(sock)
        return sock

    def _forward(self, source: Any, dest: Any, direction: str) -> None:
        try:
            while True:
                data = source.recv(CHUNK)
                if not data:
                    break
                data, stop = self._apply(data, direction, source, dest)
                self._send(dest, data)
                if direction == DOWN:
                    self.down_bytes += len(data)
                if stop:
                    break
        except OSError:
            pass
        finally:
            _shutdown_write(dest)

    def _apply(self, data: bytes, direction: str, source: Any, dest: Any) -> tuple[bytes, bool]:
        """Apply the switched-on faults to one chunk; returns (what to send, stop after it?)."""
        faults, sent = self.faults, self.down_bytes
        if direction not in faults.directions:
            return data, False
        if faults.half_open == direction:
            return b"", False  # swallowed: the other side never hears of it
        if faults.latency:
            gevent.sleep(faults.latency)
        if direction == UP:
            return data, False
        if faults.flip_after is not None:
            data = _flip(data, sent, faults.flip_after)
        if faults.truncate_after is not None and sent + len(data) >= faults.truncate_after:
            return data[:max(0, faults.truncate_after - sent)], True
        if faults.reset_after is not None and sent + len(data) >= faults.reset_after:
            self._send(dest, data[:max(0, faults.reset_after - sent)])
            _reset(source)
            _reset(dest)
            return b"", True
        return data, False

    def _send(self, dest: Any, data: bytes) -> None:
        """Send, in 1/20 s pieces when a bandwidth cap is on (a slowloris trickles this way)."""
        rate = self.faults.bandwidth
        if not rate:
            dest.sendall(data)
            return
        piece = max(1, rate // 20)
        for start in range(0, len(data), piece):
            gevent.sleep(min(piece, len(data) - start) / rate)
            dest.sendall(data[start:start + piece])


def free_port() -> int:
    """A loopback port nobody listens on now (bound, read, released): "connection refused"."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def _flip(data: bytes, sent: int, offset: int) -> bytes:
    index = offset - sent
    if not 0 <= index < len(data):
        return data
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1:]


def _reset(sock: Any) -> None:
    """Close with SO_LINGER 0, so the kernel sends RST instead of FIN."""
    try:
        sock.setsockopt(pysocket.SOL_SOCKET, pysocket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    except OSError:
        pass


def _shutdown_write(sock: Any) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(pysocket.SHUT_WR)
