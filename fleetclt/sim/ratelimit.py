"""The unauthenticated-call rate limiter, exactly as middlewared's (docs/protocol.md §6).

Key = method + client IP; 20 calls per fixed 60 s window that starts when a
key is first seen; every call counts, refused ones too; when the table holds
exactly 100 keys every call is refused (the server's equality quirk); the whole
table is cleared every 600 s, first 600 s after start.
"""
from __future__ import annotations

from dataclasses import dataclass

from .clock import SimClock

MAX_CALLS, MAX_PERIOD = 20, 60.0
MAX_CACHE_ENTRIES, CLEAR_CACHE_INTERVAL = 100, 600.0


@dataclass
class _Window:
    num_calls: int
    last_reset: float


class RateLimiter:
    """Decides whether one unauthenticated call may run."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self._cache: dict[str, _Window] = {}
        self._last_clear = clock.now()

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()
        self._last_clear = self.clock.now()

    def allow(self, method: str, ip: str) -> bool:
        """Count this call; False means it must be refused."""
        now = self.clock.now()
        if now - self._last_clear >= CLEAR_CACHE_INTERVAL:
            self.clear()
        if len(self._cache) == MAX_CACHE_ENTRIES:
            return False
        window = self._cache.setdefault(f"{method}_##_{ip}", _Window(0, now))
        if now - window.last_reset >= MAX_PERIOD:
            window.num_calls, window.last_reset = 0, now
        window.num_calls += 1
        return window.num_calls <= MAX_CALLS
