"""The transport's fast receive path agrees with wsproto on every frame it must hand over.

The server here waits for the client's first message before it sends raw bytes,
so the client is on the fast path (nothing arrived with the upgrade response).
"""
from __future__ import annotations

import struct
from collections.abc import Iterator

import gevent
import pytest
from gevent.server import StreamServer
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Pong, Request

from fleetclt.client.tls import TLSPolicy
from fleetclt.client.transport import WebSocket, open_websocket
from fleetclt.errors import ConnectionLost, ProtocolError
from fleetclt.protocol.endpoint import Endpoint
from tests.helpers import wait_until


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bytes | None = None) -> bytes:
    """A raw server frame (unmasked unless asked)."""
    size = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    flag = 0x80 if mask else 0
    if size < 126:
        head += bytes([flag | size])
    else:
        head += bytes([flag | 126]) + struct.pack("!H", size)
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


class RawServer:
    """Upgrades, waits for one client message, then sends `chunks` with a pause between them."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks, self.received = chunks, []  # type: list[bytes], list[object]
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()

    def _handle(self, sock, _addr) -> None:
        ws = WSConnection(ConnectionType.SERVER)
        while not any(isinstance(e, Request) for e in self._feed(ws, sock.recv(65536))):
            pass
        sock.sendall(ws.send(AcceptConnection()))
        while not self._feed(ws, sock.recv(65536)):
            pass
        for chunk in self.chunks:
            sock.sendall(chunk)
            gevent.sleep(0.005)
        while data := sock.recv(65536):
            self._feed(ws, data)

    def _feed(self, ws: WSConnection, data: bytes) -> list[object]:
        ws.receive_data(data or None)
        events = list(ws.events())
        self.received += events
        return events


@pytest.fixture
def serve() -> Iterator:
    servers: list[RawServer] = []
    sockets: list[WebSocket] = []

    def start(chunks: list[bytes]) -> WebSocket:
        server = RawServer(chunks)
        servers.append(server)
        ws = open_websocket("nas01", Endpoint("ws", "127.0.0.1", server.server.server_port, "/"), TLSPolicy(), 5)
        sockets.append(ws)
        ws.send("go")
        return ws

    start.servers = servers  # type: ignore[attr-defined]
    yield start
    for ws in sockets:
        ws.close()
    for server in servers:
        server.server.stop()


def bytewise(data: bytes) -> list[bytes]:
    return [data[i:i + 1] for i in range(len(data))]


def test_texts_and_a_ping_in_one_chunk_then_byte_by_byte(serve) -> None:
    stream = frame(1, b"one") + frame(9, b"hi") + frame(1, "två".encode()) + frame(1, b"x" * 300)
    ws = serve([stream] + bytewise(frame(1, b"slow")))
    assert ws._splitter is not None
    with gevent.Timeout(5):
        assert [ws.receive() for _ in range(4)] == ["one", "två", "x" * 300, "slow"]
    server = serve.servers[-1]
    wait_until(lambda: any(isinstance(e, Pong) and e.payload == b"hi" for e in server.received))


def test_fragmented_message_with_a_ping_inside(serve) -> None:
    ws = serve([frame(1, b"ab", fin=False) + frame(9, b"p") + frame(0, b"cd") + frame(1, b"after")])
    with gevent.Timeout(5):
        assert ws.receive() == "abcd"
        assert ws.receive() == "after"


def test_pong_reaches_the_callback(serve) -> None:
    pongs: list[bytes] = []
    ws = serve([frame(10, b"pp") + frame(1, b"next")])
    ws.on_pong = pongs.append
    with gevent.Timeout(5):
        assert ws.receive() == "next"
    assert pongs == [b"pp"]


@pytest.mark.parametrize("stream, code", [
    (frame(1, b"\xff\xfe bad"), 1007),                         # invalid UTF-8
    (frame(1, b"masked", mask=b"abcd"), 1002),                  # servers must not mask
    (frame(1, b"a", fin=False) + frame(1, b"b"), 1002),         # a new message inside a fragmented one
    (bytes([0xC1, 1]) + b"x", 1002),                            # reserved bit set
])
def test_bad_frames_fail_the_connection_as_wsproto_does(serve, stream: bytes, code: int) -> None:
    ws = serve([stream])
    with gevent.Timeout(5), pytest.raises(ProtocolError, match=f"closed with {code}"):
        ws.receive()


def test_a_frame_over_max_message_is_refused(serve) -> None:
    ws = serve([frame(1, b"y" * 2000)])
    ws.max_message = 1000
    with gevent.Timeout(5), pytest.raises(ProtocolError, match="closed with 1009"):
        ws.receive()


def test_close_from_the_server(serve) -> None:
    ws = serve([frame(1, b"last") + frame(8, struct.pack("!H", 1001) + b"bye")])
    with gevent.Timeout(5):
        assert ws.receive() == "last"
        with pytest.raises(ConnectionLost, match="1001"):
            ws.receive()
