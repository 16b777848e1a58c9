"""Simulated time: real time sped up by a factor, plus manual fast-forward.

Every wait in the simulator (login failure delay, rate-limit refusal delay,
job steps) and every time it reads (rate-limit windows, job timestamps) goes
through one SimClock, so a test can run the real 60 s / 600 s limiter rules
at `speed=100`, or jump a window with `advance(60)` instead of sleeping.
"""
from __future__ import annotations

import time

import gevent


class SimClock:
    """Monotonic simulated seconds; `speed` > 1 makes waits shorter."""

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._origin = time.monotonic()
        self._offset = 0.0

    def now(self) -> float:
        """Simulated seconds since the clock was made."""
        return (time.monotonic() - self._origin) * self.speed + self._offset

    def wall(self) -> float:
        """Simulated epoch seconds, for timestamps the API shows."""
        return time.time() + self._offset + (time.monotonic() - self._origin) * (self.speed - 1)

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time (seconds / speed of real time)."""
        gevent.sleep(max(0.0, seconds) / self.speed)

    def advance(self, seconds: float) -> None:
        """Jump simulated time forward without waiting."""
        self._offset += seconds


class ManualClock(SimClock):
    """Time moves only by `advance()`; waits still take seconds / speed of real time.

    For tests of windows and deadlines that must not depend on how fast the
    machine runs.
    """

    def __init__(self, speed: float = 1000.0) -> None:
        super().__init__(speed)
        self._wall_origin = time.time()

    def now(self) -> float:
        return self._offset

    def wall(self) -> float:
        return self._wall_origin + self._offset
