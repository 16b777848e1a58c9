"""The shared upload cap (client/bandwidth.py), on a fake clock: the only mock these tests allow."""
from __future__ import annotations

import pytest

from fleetclt.client.bandwidth import MIN_PIECE, Bandwidth
from tests.client.test_throttle import FakeTime


def test_transfers_sharing_a_cap_send_at_its_rate_together():
    clock = FakeTime()
    clock.now = 100.0
    cap = Bandwidth(1000.0, clock=clock.clock, sleep=clock.sleep)
    for _ in range(10):        # two transfers taking turns, 100 bytes at a time
        cap.take(100)
        cap.take(100)
    # 2,000 bytes at 1,000 B/s: the 20th piece of 0.1 s may start after 1.9 s.
    assert clock.now == pytest.approx(101.9)
    clock.now += 5.0           # idle time is not saved up for a burst
    cap.take(500)
    assert clock.now == pytest.approx(106.9)
    cap.take(500)
    assert clock.now == pytest.approx(107.4)


def test_pieces_are_about_50_ms_at_the_rate_and_a_bad_rate_is_refused():
    assert Bandwidth(100 * 1024 * 1024).piece(1024 * 1024) == 1024 * 1024
    assert Bandwidth(2 * 1024 * 1024).piece(1024 * 1024) == 2 * 1024 * 1024 // 20
    assert Bandwidth(10.0).piece(1024 * 1024) == MIN_PIECE
    with pytest.raises(ValueError, match="above 0"):
        Bandwidth(0)
