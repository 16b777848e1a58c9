"""Auth throttling and reconnect backoff, with injected clock, sleep and randomness.

Layer: foundation; imports fleetclt.errors only.

TrueNAS refuses the 21st unauthenticated call per method and source address in
a fixed 60 s window, after a 1-10 s delay (truenas-protocol.md section 6). The
default bucket allows a burst of 5 and refills one token every 6 s: at most
5 + 10 = 15 logins in any 60 s, under the limit even in a reconnect storm.
Backoff is capped exponential with full jitter (AWS architecture blog), so a
fleet that lost its network does not come back in lock-step.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable

from .errors import ThrottledError

Clock = Callable[[], float]
Sleep = Callable[[float], None]

SERVER_WINDOW = 60.0


@dataclass
class TokenBucket:
    """`capacity` tokens, one more every `refill_seconds`; `blocked_until` honours server EBUSY."""

    capacity: float = 5.0
    refill_seconds: float = 6.0
    clock: Clock = time.monotonic
    tokens: float = field(init=False)
    stamp: float = field(init=False)
    blocked_until: float = 0.0

    def __post_init__(self) -> None:
        self.tokens, self.stamp = self.capacity, self.clock()

    def wait_time(self) -> float:
        """Seconds until one token is available (0 when one is there now)."""
        self._refill()
        now = self.clock()
        blocked = max(0.0, self.blocked_until - now)
        missing = max(0.0, 1.0 - self.tokens) * self.refill_seconds
        return max(blocked, missing)

    def take(self) -> bool:
        """Use one token if there is one."""
        if self.wait_time() > 0:
            return False
        self.tokens -= 1.0
        return True

    def block(self, seconds: float = SERVER_WINDOW) -> None:
        """The server refused us: spend nothing until its window has surely passed."""
        self.blocked_until = max(self.blocked_until, self.clock() + seconds)
        self.tokens = 0.0

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) / self.refill_seconds)
        self.stamp = now


@dataclass
class AuthThrottle:
    """Gate for every unauthenticated call to one host; waits at most `max_wait` for a token."""

    bucket: TokenBucket = field(default_factory=TokenBucket)
    max_wait: float = 30.0
    sleep: Sleep = time.sleep

    def acquire(self, key: str, host: str) -> None:
        """Take a token for server `key` (address:port), waiting if that is quick.

        ThrottledError (naming `host`) when the wait would exceed `max_wait`.
        """
        delay = self.bucket.wait_time()
        if delay > self.max_wait:
            raise ThrottledError(f"auth budget spent; next attempt allowed in {delay:.0f} s "
                                 "(keeps us under TrueNAS's 20 per 60 s limit)", host)
        if delay:
            self.sleep(delay)
        if not self.bucket.take():
            raise ThrottledError("auth budget spent", host)

    def block(self, key: str, seconds: float = SERVER_WINDOW) -> None:
        """The server at `key` refused a login with EBUSY: spend nothing for `seconds`."""
        self.bucket.block(seconds)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base*2**n))."""

    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int) -> float:
        return self.rand(0.0, min(self.cap, self.base * (2 ** min(attempt, 30))))
