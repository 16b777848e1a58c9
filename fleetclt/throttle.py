"""Auth budgets shared by every fleetclt process of this user, and reconnect backoff.

Layer: foundation; imports fleetclt.errors and fleetclt.state only.

Why: TrueNAS refuses the 21st unauthenticated call per method and *source IP*
in a fixed 60 s window, after a 1-10 s delay (truenas-protocol.md section 6).
The bucket for one server allows a burst of 5 and refills one token every 6 s:
at most 5 + 10 = 15 logins in any 60 s, under the limit even in a reconnect
storm. Because the server counts per source IP, the budget must be shared by
every fleetclt process of this user on the machine: running the CLI 30 times in
a minute must not get a host to lock us out.

Shape:

* ``TokenBucket`` is the policy and the only place with token math; it acts on
  a ``BucketState`` (tokens, stamp, blocked_until) at a time the caller gives.
* A *store* holds one ``BucketState`` per key (``"address:port"`` or a unix
  socket path) and hands them out inside ``transaction()``: one
  read-modify-write, exclusive against every other user of the same store.
  - ``FileStore`` (the default): ``auth-budget.json`` under
    ``$FLEETCLT_STATE_DIR``, else ``$XDG_STATE_HOME/fleetclt``, else
    ``~/.local/state/fleetclt`` (made 0700, files 0600), guarded by ``flock`` on a
    separate ``auth-budget.lock`` (the JSON file is replaced atomically, so it
    cannot carry the lock itself). A corrupt or unreadable file logs a warning
    and starts fresh; if the directory cannot be used at all the store falls
    back to process-local memory, with a warning, rather than refuse logins.
  - ``MemoryStore``: per-process budgets, for library users who want no files:
    ``AuthThrottle(store=MemoryStore())``.
* ``AuthThrottle(bucket=TokenBucket(clock=...), store=..., sleep=...)`` is what
  sessions call: ``acquire(key, host)`` before each unauthenticated call,
  ``block(key)`` when the server answered EBUSY. The clock is injected through
  the bucket (its policy); it defaults to ``time.time``, wall-clock epoch
  seconds, since monotonic clocks do not cross processes; a clock stepping
  backwards is tolerated. Waiting happens outside the lock, which is held for
  one small read and write, so a blocking ``flock`` costs the hub microseconds.
  After a wait the token is taken afresh: another process may have won it.
* Entries idle for 10 minutes with a full bucket are pruned on every write.

``Backoff`` is capped exponential with full jitter (AWS architecture blog), so
a fleet that lost its network does not come back in lock-step.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Protocol

from .errors import ThrottledError
from .state import ensure_dir, state_dir as default_state_dir, write_private

Clock = Callable[[], float]
Sleep = Callable[[float], None]
States = dict[str, "BucketState"]

SERVER_WINDOW = 60.0
PRUNE_IDLE = 600.0  # the server clears its whole limiter every 10 min
STATE_FILE = "auth-budget.json"
LOCK_FILE = "auth-budget.lock"
_EPSILON = 1e-6  # a millionth of a token is float rounding, not budget; keeps waits above clock resolution

log = logging.getLogger(__name__)


@dataclass
class BucketState:
    """One key's budget: `tokens` as of `stamp`; nothing may be spent before `blocked_until`."""

    tokens: float
    stamp: float
    blocked_until: float = 0.0

    @classmethod
    def from_json(cls, raw: object) -> BucketState:
        """Parse one stored entry; ValueError when it is not three finite numbers."""
        if not isinstance(raw, dict):
            raise ValueError(f"entry is {type(raw).__name__}, not an object")
        values = [raw.get(name) for name in ("tokens", "stamp", "blocked_until")]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                   for v in values):
            raise ValueError(f"entry {raw!r} is not three finite numbers")
        return cls(*(float(v) for v in values))  # type: ignore[arg-type]


@dataclass(frozen=True)
class TokenBucket:
    """`capacity` tokens, one more every `refill_seconds`; the one place with token math.

    The math is pure (it takes `now`); `clock` is read once per store transaction by AuthThrottle.
    """

    capacity: float = 5.0
    refill_seconds: float = 6.0
    clock: Clock = time.time

    def new(self, now: float) -> BucketState:
        return BucketState(self.capacity, now)

    def refill(self, state: BucketState, now: float) -> None:
        """Bring `state` up to `now`; a wall clock that stepped back shifts the block with it."""
        elapsed = now - state.stamp
        if elapsed < 0:
            state.blocked_until += elapsed
            elapsed = 0.0
        state.tokens = min(self.capacity, max(0.0, state.tokens) + elapsed / self.refill_seconds)
        state.stamp = now

    def wait_time(self, state: BucketState, now: float) -> float:
        """Seconds until one token can be spent (0 when it can be now)."""
        self.refill(state, now)
        blocked = max(0.0, state.blocked_until - now)
        missing = 0.0 if state.tokens >= 1.0 - _EPSILON else (1.0 - state.tokens) * self.refill_seconds
        return max(blocked, missing)

    def take(self, state: BucketState, now: float) -> float:
        """Spend one token and return 0, or spend nothing and return the wait."""
        delay = self.wait_time(state, now)
        if delay <= 0:
            state.tokens = max(0.0, state.tokens - 1.0)
        return delay

    def block(self, state: BucketState, now: float, seconds: float = SERVER_WINDOW) -> None:
        """The server refused us: spend nothing until its window has surely passed."""
        self.refill(state, now)
        state.blocked_until = max(state.blocked_until, now + seconds)
        state.tokens = 0.0

    def is_idle(self, state: BucketState, now: float) -> bool:
        """Untouched for PRUNE_IDLE, full again and not blocked: safe to forget."""
        full = state.tokens + max(0.0, now - state.stamp) / self.refill_seconds >= self.capacity
        return now - state.stamp > PRUNE_IDLE and full and state.blocked_until <= now

    def prune(self, states: States, now: float) -> None:
        for key in [k for k, s in states.items() if self.is_idle(s, now)]:
            del states[key]


class Store(Protocol):
    """Per-key bucket states handed out for one exclusive read-modify-write."""

    def transaction(self) -> contextlib.AbstractContextManager[States]: ...


class MemoryStore:
    """Budgets private to this process (nothing on disk)."""

    def __init__(self) -> None:
        self.states: States = {}

    @contextlib.contextmanager
    def transaction(self) -> Iterator[States]:
        yield self.states  # no I/O inside: greenlets cannot interleave here


class FileStore:
    """Budgets in one JSON file shared by every process of this user, under an flock."""

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(state_dir) if state_dir is not None else default_state_dir()
        self.path = self.dir / STATE_FILE
        self._fallback: MemoryStore | None = None

    def __repr__(self) -> str:
        return f"FileStore({str(self.dir)!r})"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[States]:
        try:
            lock_fd = self._open_lock()
        except OSError as exc:
            with self._memory(exc).transaction() as states:
                yield states
            return
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            states = self._load()
            yield states
            self._save(states)
        finally:
            os.close(lock_fd)  # closing drops the flock

    def _memory(self, exc: OSError) -> MemoryStore:
        if self._fallback is None:
            log.warning("auth budget state dir %s unusable (%s); budgets are per process", self.dir, exc)
            self._fallback = MemoryStore()
        return self._fallback

    def _open_lock(self) -> int:
        ensure_dir(self.dir)
        return os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _load(self) -> States:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read auth budget file %s (%s); starting fresh", self.path, exc)
            return {}
        try:
            buckets = json.loads(text)["buckets"]
            return {str(key): BucketState.from_json(raw) for key, raw in buckets.items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("corrupt auth budget file %s (%s); starting fresh", self.path, exc)
            return {}

    def _save(self, states: States) -> None:
        body = json.dumps({"version": 1, "buckets": {k: asdict(s) for k, s in states.items()}})
        try:
            write_private(self.path, body)
        except OSError as exc:
            log.warning("cannot write auth budget file %s (%s)", self.path, exc)


@dataclass
class AuthThrottle:
    """Gate for every unauthenticated call to one server; waits at most `max_wait` for a token."""

    bucket: TokenBucket = field(default_factory=TokenBucket)
    max_wait: float = 30.0
    sleep: Sleep = time.sleep
    store: Store = field(default_factory=FileStore)

    def acquire(self, key: str, host: str, *, max_wait: float | None = None) -> None:
        """Take a token for server `key` (address:port), sleeping (outside the lock) if that is quick.

        ThrottledError (naming `host`, saying when to try again) when the wait would exceed
        `max_wait`. Another process may take the token we slept for, so this tries again.
        """
        limit = self.max_wait if max_wait is None else max_wait
        waited = 0.0
        while True:
            delay = self._try_take(key)
            if delay <= 0:
                return
            if waited + delay > limit:
                raise ThrottledError(self._refusal(delay), host)
            self.sleep(delay)
            waited += delay

    def block(self, key: str, seconds: float = SERVER_WINDOW) -> None:
        """The server at `key` refused a login with EBUSY: spend nothing for `seconds`."""
        with self.store.transaction() as states:
            now = self.bucket.clock()
            self.bucket.block(self._state(states, key, now), now, seconds)
            self.bucket.prune(states, now)

    def _try_take(self, key: str) -> float:
        with self.store.transaction() as states:
            now = self.bucket.clock()
            delay = self.bucket.take(self._state(states, key, now), now)
            self.bucket.prune(states, now)
            return delay

    def _state(self, states: States, key: str, now: float) -> BucketState:
        if key not in states:
            states[key] = self.bucket.new(now)
        return states[key]

    def _refusal(self, delay: float) -> str:
        at = time.strftime("%H:%M:%S", time.localtime(self.bucket.clock() + delay))
        return (f"auth budget spent; next attempt allowed in {math.ceil(delay)} s (at {at}); "
                "this keeps every fleetclt process here under TrueNAS's 20 per 60 s limit")


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base*2**n))."""

    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int) -> float:
        return self.rand(0.0, min(self.cap, self.base * (2 ** min(attempt, 30))))
