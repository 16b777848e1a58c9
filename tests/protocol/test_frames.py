"""The transport's own text-frame encoder produces frames wsproto (as a server) reads back exactly."""
from __future__ import annotations

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from fleetclt.protocol.frames import FrameSplitter, text_frame


@pytest.mark.parametrize("text", ["", "a", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536, "héllo ✓ " * 40])
def test_text_frame_round_trips_through_a_wsproto_server(text: str) -> None:
    server = Connection(ConnectionType.SERVER)
    server.receive_data(text_frame(text.encode()))
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], TextMessage)
    assert events[0].data == text and events[0].message_finished


def test_every_frame_has_a_fresh_mask() -> None:
    assert len({text_frame(b"same") for _ in range(8)}) > 1


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    assert len(payload) < 126
    return bytes([(0x80 if fin else 0) | opcode, len(payload)]) + payload


def test_the_splitter_decodes_text_and_hands_every_other_frame_on_whole() -> None:
    ping, first, last = server_frame(0x9, b"p"), server_frame(0x1, b"ab", fin=False), server_frame(0x0, b"c")
    stream = server_frame(0x1, "héllo".encode()) + ping + first + server_frame(0x1, b"inside?") + last
    splitter = FrameSplitter()
    out = [item for byte in range(len(stream)) for item in splitter.feed(stream[byte:byte + 1], 1 << 20)]
    # a text frame inside a fragmented message is not decoded here: the parser rejects it
    assert out == ["héllo", ping, first, server_frame(0x1, b"inside?"), last]
    assert not splitter.bypassed and splitter.take_rest() == b""


def test_invalid_utf8_goes_to_the_parser_and_a_big_frame_bypasses_the_splitter() -> None:
    splitter = FrameSplitter()
    bad = server_frame(0x1, b"\xff\xfe")
    assert splitter.feed(bad, 1 << 20) == [bad]
    big = bytes([0x81, 126]) + (200).to_bytes(2, "big") + b"x" * 50  # over the limit, still arriving
    assert splitter.feed(big, 100) == [big] and splitter.bypassed
