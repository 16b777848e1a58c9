"""Auth budgets shared by every fleetclt process of this user, and reconnect backoff.

Why: TrueNAS refuses the 21st unauthenticated call per method and *source IP*
in a fixed 60 s window, after a 1-10 s delay (docs/protocol.md §6). The bucket
for one server allows a burst of 5 and refills one token every 6 s: at most
5 + 10 = 15 logins in any 60 s, under the limit even in a reconnect storm.
Because the server counts per source IP, the budget must be shared by every
fleetclt process of this user on the machine.

``TokenBucket`` is the policy and the only place with token math. A store holds
one ``BucketState`` per server and hands it out inside ``transaction()``, one
read-modify-write exclusive against every other user of the store: ``FileStore``
(the default: one flock'd file per server under the state dir, see
fleetclt.local.state) or ``MemoryStore`` (this process only). ``AuthThrottle``
is what sessions call: ``acquire`` before each connect that logs in (the token
covers its system.boot_id and login, sent together), ``refund`` when the socket
never opened, ``block`` when the server answered EBUSY. A wait over a second is
logged at INFO on WAIT_LOGGER, naming the host. Time is wall-clock epoch seconds,
because monotonic clocks do not cross processes. An unusable state dir falls back
to one budget in process memory, shared by every session, with one warning per
process, rather than refuse logins.

``Backoff`` is capped exponential with full jitter, so a fleet that lost its
network does not come back in lock-step.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import ThrottledError
from ..local.state import ensure_dir, warn_unusable
from ..local.state import state_dir as default_state_dir

Clock = Callable[[], float]
Sleep = Callable[[float], None]
States = dict[str, "BucketState"]

SERVER_WINDOW = 60.0
PRUNE_IDLE = 600.0  # the server clears its whole limiter every 10 min
# A budget file is kept a day after its last use: creating it again costs much more
# than rewriting it, on every run more than 10 minutes after the last; it takes 4 KiB
# per server on disk (docs/performance.md §5).
FILE_KEEP = 86400.0
_BUDGET_FILE_FLAGS = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
BUDGET_DIR = "auth-budget"   # one file per server inside the state dir
_EPSILON = 1e-6  # a millionth of a token is float rounding, not budget; keeps waits above clock resolution

log = logging.getLogger(__name__)
WAIT_LOGGER = f"{__name__}.wait"  # "waiting 6 s for nas003's login budget": the CLI prints these plainly
wait_log = logging.getLogger(WAIT_LOGGER)


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

    def to_json(self) -> dict[str, float]:
        """The stored form, built directly: dataclasses.asdict deep-copies (docs/performance.md §5)."""
        return {"tokens": self.tokens, "stamp": self.stamp, "blocked_until": self.blocked_until}


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

    def refund(self, state: BucketState, now: float) -> None:
        """A token spent on a connect that sent nothing comes back."""
        self.refill(state, now)
        state.tokens = min(self.capacity, state.tokens + 1.0)

    def block(self, state: BucketState, now: float, seconds: float = SERVER_WINDOW) -> None:
        """The server refused us: spend nothing until its window has surely passed."""
        self.refill(state, now)
        state.blocked_until = max(state.blocked_until, now + seconds)
        state.tokens = 0.0

    def is_idle(self, state: BucketState, now: float) -> bool:
        """Untouched for PRUNE_IDLE, full again and not blocked: safe to forget."""
        full = state.tokens + max(0.0, now - state.stamp) / self.refill_seconds >= self.capacity
        return now - state.stamp > PRUNE_IDLE and full and state.blocked_until <= now


class Store(Protocol):
    """Bucket states handed out one key at a time, for one exclusive read-modify-write."""

    def transaction(self, key: str) -> contextlib.AbstractContextManager[States]: ...
    def sweep(self, is_idle: Callable[[BucketState], bool], now: float) -> None: ...


class _SweepTimer:
    """At most one sweep per PRUNE_IDLE for each place budgets live (shared by every throttle)."""

    _last: dict[str, float] = {}

    @classmethod
    def due(cls, place: str, now: float) -> bool:
        last = cls._last.get(place)
        if last is not None and 0 <= now - last < PRUNE_IDLE:
            return False
        cls._last[place] = now
        return True


class MemoryStore:
    """Budgets private to this process (nothing on disk)."""

    def __init__(self) -> None:
        self.states: States = {}

    @contextlib.contextmanager
    def transaction(self, key: str) -> Iterator[States]:
        yield self.states  # no I/O inside: greenlets cannot interleave here

    def sweep(self, is_idle: Callable[[BucketState], bool], now: float) -> None:
        if _SweepTimer.due(f"memory:{id(self)}", now):
            for key in [k for k, state in self.states.items() if is_idle(state)]:
                del self.states[key]


class FileStore:
    """One small file per server under the state dir, each locked with flock while used.

    A file per key keeps a login O(1) however many servers the user talks to (one
    shared file made 1,000 logins parse and rewrite 1,000 entries each). The file
    is rewritten in place under its own lock; a torn write reads as corrupt and
    starts that key fresh, with a warning.
    """

    # An unusable budget dir, by path: the one in-memory store every session of this process shares.
    _fallbacks: dict[str, MemoryStore] = {}

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.dir = (Path(state_dir) if state_dir is not None else default_state_dir()) / BUDGET_DIR
        self._place = str(self.dir)

    def __repr__(self) -> str:
        return f"FileStore({str(self.dir)!r})"

    def path(self, key: str) -> Path:
        return self.dir / (hashlib.sha256(key.encode()).hexdigest()[:24] + ".json")

    @contextlib.contextmanager
    def transaction(self, key: str) -> Iterator[States]:
        memory = self._fallbacks.get(self._place)
        if memory is None:
            try:
                fd = self._open(key)
            except OSError as exc:
                memory = self._memory(exc)
        if memory is not None:
            with memory.transaction(key) as states:
                yield states
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            states = self._load(fd, key)
            yield states
            self._save(fd, key, states.get(key))
        finally:
            os.close(fd)  # closing drops the flock

    def sweep(self, is_idle: Callable[[BucketState], bool], now: float) -> None:
        """Delete the files of servers untouched for FILE_KEEP whose buckets are full again.

        Every session has its own throttle: the sweep timer is per directory, or
        1,000 first logins would each read 1,000 files.
        """
        memory = self._fallbacks.get(self._place)
        if memory is not None:
            return memory.sweep(is_idle, now)
        if not _SweepTimer.due(str(self.dir), now):
            return
        try:
            entries = [e for e in os.scandir(self.dir) if e.name.endswith(".json")]
        except OSError:
            return
        for entry in entries:
            try:
                if 0 <= now - entry.stat().st_mtime < FILE_KEEP:
                    continue  # used within a day: kept, and not even read
                with open(entry.path, "rb") as budget:
                    state = BucketState.from_json(json.loads(budget.read()))
            except (OSError, ValueError):
                continue
            if is_idle(state):
                with contextlib.suppress(FileNotFoundError):  # another process swept it first
                    os.unlink(entry.path)

    def _memory(self, exc: OSError) -> MemoryStore:
        """The shared in-memory store for this dir; made, and warned about, once per process."""
        memory = self._fallbacks.get(self._place)
        if memory is None:
            warn_unusable(self.dir.parent, exc)
            memory = self._fallbacks[self._place] = MemoryStore()
        return memory

    def _open(self, key: str) -> int:
        """The key's file; the folders are made only when missing (one syscall per login, not five)."""
        path = self.path(key)
        try:
            return os.open(path, _BUDGET_FILE_FLAGS, 0o600)
        except FileNotFoundError:
            ensure_dir(self.dir.parent)
            ensure_dir(self.dir)
        return os.open(path, _BUDGET_FILE_FLAGS, 0o600)

    def _load(self, fd: int, key: str) -> States:
        try:
            raw = os.pread(fd, 4096, 0)
        except OSError as exc:
            log.warning("cannot read auth budget of %s (%s); starting fresh", key, exc)
            return {}
        if not raw:
            return {}
        try:
            return {key: BucketState.from_json(json.loads(raw))}
        except ValueError as exc:  # includes JSON and UTF-8 decoding errors
            log.warning("corrupt auth budget of %s (%s); starting fresh", key, exc)
            return {}

    def _save(self, fd: int, key: str, state: BucketState | None) -> None:
        if state is None:
            return
        body = json.dumps({"key": key, **state.to_json()}).encode()
        try:
            os.pwrite(fd, body, 0)
            os.ftruncate(fd, len(body))
        except OSError as exc:
            log.warning("cannot write auth budget of %s (%s)", key, exc)


@dataclass
class AuthThrottle:
    """Gate for every unauthenticated call to one server; waits at most `max_wait` for a token."""

    bucket: TokenBucket = field(default_factory=TokenBucket)
    max_wait: float = 30.0
    sleep: Sleep = time.sleep
    store: Store = field(default_factory=FileStore)

    def acquire(self, key: str, host: str, *, max_wait: float | None = None,
                on_wait: Callable[[float], None] | None = None) -> None:
        """Take a token for server `key` (address:port), sleeping (outside the lock) if that is quick.

        ThrottledError at once (naming `host`, saying when the next login is allowed) when
        the wait would exceed `max_wait` (at most the throttle's own). A wait is told to
        `on_wait` first, and logged when over a second. Another process may take the token
        we slept for, so this tries again.
        """
        limit = self.max_wait if max_wait is None else min(max_wait, self.max_wait)
        waited = 0.0
        while True:
            delay = self._try_take(key)
            if delay <= 0:
                return
            if waited + delay > limit:
                raise self.refusal(host, delay)
            if delay > 1.0:
                wait_log.info("waiting %d s for %s's login budget", math.ceil(delay), host,
                              extra={"wait_seconds": delay})
            if on_wait is not None:
                on_wait(delay)
            self.sleep(delay)
            waited += delay

    def refund(self, key: str) -> None:
        """Give back a token taken for a connect that sent nothing (the socket never opened)."""
        with self.store.transaction(key) as states:
            now = self.bucket.clock()
            self.bucket.refund(self._state(states, key, now), now)

    def block(self, key: str, seconds: float = SERVER_WINDOW) -> None:
        """The server at `key` refused a login with EBUSY: spend nothing for `seconds`."""
        with self.store.transaction(key) as states:
            now = self.bucket.clock()
            self.bucket.block(self._state(states, key, now), now, seconds)
        self._maybe_sweep(now)

    def _try_take(self, key: str) -> float:
        with self.store.transaction(key) as states:
            now = self.bucket.clock()
            delay = self.bucket.take(self._state(states, key, now), now)
        self._maybe_sweep(now)
        return delay

    def _maybe_sweep(self, now: float) -> None:
        """Forget idle servers (the store runs this at most once per PRUNE_IDLE)."""
        self.store.sweep(lambda state: self.bucket.is_idle(state, now), now)

    def _state(self, states: States, key: str, now: float) -> BucketState:
        if key not in states:
            states[key] = self.bucket.new(now)
        return states[key]

    def refusal(self, host: str, delay: float) -> ThrottledError:
        """The error for a login `delay` seconds away: when the next one is allowed, and why."""
        retry_at = self.bucket.clock() + delay
        at = time.strftime("%H:%M:%S", time.localtime(retry_at))
        return ThrottledError(f"auth budget spent; next login allowed in {math.ceil(delay)} s (at {at}); "
                              "this keeps every fleetclt process here under TrueNAS's 20 per 60 s limit",
                              host, retry_at)


@dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff with full jitter: attempt n waits uniform(0, min(cap, base*2**n))."""

    base: float = 0.5
    cap: float = 30.0
    rand: Callable[[float, float], float] = random.uniform

    def delay(self, attempt: int) -> float:
        return self.rand(0.0, min(self.cap, self.base * (2 ** min(attempt, 30))))
