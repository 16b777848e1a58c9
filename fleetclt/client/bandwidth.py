"""A cap on the bytes per second that every transfer holding it sends together.

`fleetclt upload --rate 100M` shares one Bandwidth between all hosts'
uploads: each piece reserves its time on one schedule, so the total stays
at the rate however many transfers run, and a transfer waits only for its
own reservation (no thread, no timer). Pieces are kept to a twentieth of a
second's worth, so the cap holds over short spans too.
"""
from __future__ import annotations

import time
from collections.abc import Callable

import gevent

MIN_PIECE = 16 * 1024


class Bandwidth:
    """`rate` bytes per second, shared."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = gevent.sleep) -> None:
        if not rate > 0:
            raise ValueError(f"a bandwidth cap must be above 0 bytes per second, not {rate}")
        self.rate = rate
        self._clock, self._sleep = clock, sleep
        self._due = 0.0  # when the next reserved byte may go

    def piece(self, largest: int) -> int:
        """How many bytes to send at a time: at most `largest`, about 50 ms at the rate."""
        return max(MIN_PIECE, min(largest, int(self.rate / 20)))

    def take(self, count: int) -> None:
        """Wait until `count` more bytes may go."""
        now = self._clock()
        start = max(self._due, now)
        self._due = start + count / self.rate
        if start > now:
            self._sleep(start - now)
