"""The transport's own text-frame encoder produces frames wsproto (as a server) reads back exactly."""
from __future__ import annotations

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import TextMessage

from fleetclt.client.transport import text_frame


@pytest.mark.parametrize("text", ["", "a", "x" * 125, "y" * 126, "z" * 65535, "w" * 65536, "héllo ✓ " * 40])
def test_text_frame_round_trips_through_a_wsproto_server(text: str) -> None:
    server = Connection(ConnectionType.SERVER)
    server.receive_data(text_frame(text.encode()))
    events = list(server.events())
    assert len(events) == 1 and isinstance(events[0], TextMessage)
    assert events[0].data == text and events[0].message_finished


def test_every_frame_has_a_fresh_mask() -> None:
    assert len({text_frame(b"same") for _ in range(8)}) > 1
