"""The unauthenticated-call rate limiter, in the order middlewared runs it (docs/protocol.md §6).

utils/rate_limit/cache.py and the caller in main.py (`authorize_method_call`
from 25.04, the DDP handler on 24.10), the same at every release tag: `add()`
inserts the call's key (method + client IP) if it is new, with a fixed 60 s
window from then; then `any((max_entries_reached, rate_limit_exceeded(...)))`
builds its tuple first, so both run: the table holding exactly 100 keys refuses
the call, and the key's counter is incremented whatever the verdict (the 21st
call in a window is refused). A refused call keeps its key. A 101st key makes
the equality false again. plugins/rate_limit clears the whole table every 600 s
from the start (`@periodic(600, run_on_start=False)`).
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
        self._next_clear = clock.now() + CLEAR_CACHE_INTERVAL

    def __len__(self) -> int:
        return len(self._cache)

    def allow(self, method: str, ip: str) -> bool:
        """Count this call; False means it must be refused."""
        now = self.clock.now()
        if now >= self._next_clear:  # the periodic task ran meanwhile, on its own schedule
            self._cache.clear()
            self._next_clear += CLEAR_CACHE_INTERVAL * (1 + (now - self._next_clear) // CLEAR_CACHE_INTERVAL)
        window = self._cache.setdefault(f"{method}_##_{ip}", _Window(0, now))  # add()
        cap_reached = len(self._cache) == MAX_CACHE_ENTRIES                      # max_entries_reached
        if MAX_PERIOD - (now - window.last_reset) <= 0:                          # rate_limit_exceeded()
            window.num_calls, window.last_reset = 0, now
        window.num_calls += 1
        return not (cap_reached or window.num_calls > MAX_CALLS)
