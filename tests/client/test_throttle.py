"""Auth budgets (in memory and shared through the state file) and backoff.

Every test injects the clock and sleep, except the one that starts real
processes to prove that the file lock lets no token be taken twice.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetclt.client.throttle import (
    BUDGET_DIR,
    FILE_KEEP,
    AuthThrottle,
    Backoff,
    BucketState,
    FileStore,
    MemoryStore,
    TokenBucket,
)
from fleetclt.errors import ThrottledError
from fleetclt.local.state import state_dir as default_state_dir
from tests.client.fake_time import FakeTime

KEY = "10.0.0.7:443"
T0 = FakeTime().now
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "state"
    monkeypatch.setenv("FLEETCLT_STATE_DIR", str(path))
    return path


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def throttle(fake: FakeTime, **kwargs: object) -> AuthThrottle:
    bucket = TokenBucket(clock=fake.clock)
    return AuthThrottle(bucket=bucket, sleep=fake.sleep, **kwargs)  # type: ignore[arg-type]


def granted(t: AuthThrottle, tries: int, key: str = KEY) -> int:
    count = 0
    for _ in range(tries):
        try:
            t.acquire(key, "nas07", max_wait=0)
            count += 1
        except ThrottledError:
            pass
    return count


def stored(state_dir: Path) -> dict[str, dict[str, float]]:
    """Every server's stored budget, by key."""
    entries = [json.loads(path.read_text()) for path in (state_dir / BUDGET_DIR).glob("*.json")]
    return {entry["key"]: entry for entry in entries}


# --- the bucket ------------------------------------------------------------------------------

def test_burst_then_one_token_per_refill(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore())
    assert granted(t, 8) == 5
    fake.now += 5.9
    assert granted(t, 1) == 0
    fake.now += 0.1
    assert granted(t, 3) == 1
    fake.now += 600
    assert granted(t, 9) == 5  # refill stops at capacity


def test_acquire_sleeps_when_the_wait_is_short(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore())
    granted(t, 5)
    t.acquire(KEY, "nas07")
    assert fake.slept == [pytest.approx(6.0)]


def test_block_is_honoured_for_the_server_window(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore())
    t.block(KEY)
    fake.now += 59.5
    with pytest.raises(ThrottledError, match="allowed in 1 s"):
        t.acquire(KEY, "nas07", max_wait=0)
    fake.now += 0.5
    assert granted(t, 9) == 5  # refilled during the block, spendable once it ends


def test_max_wait_refusal_says_when_to_try_again(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore(), max_wait=10)
    t.block(KEY, seconds=42)
    with pytest.raises(ThrottledError) as info:
        t.acquire(KEY, "nas07")
    at = time.strftime("%H:%M:%S", time.localtime(T0 + 42))
    assert info.value.host == "nas07"
    assert f"next login allowed in 42 s (at {at})" in str(info.value)
    assert fake.slept == []


def test_a_token_lost_to_another_process_is_waited_for_again(state_dir: Path, fake: FakeTime) -> None:
    mine, other = throttle(fake), throttle(fake)
    granted(mine, 5)

    def sleep_while_other_takes(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.slept) == 1:
            other.acquire(KEY, "nas07", max_wait=0)

    mine.sleep = sleep_while_other_takes
    mine.acquire(KEY, "nas07", max_wait=12)
    assert fake.slept == [pytest.approx(6.0), pytest.approx(6.0)]
    with pytest.raises(ThrottledError):
        mine.acquire(KEY, "nas07", max_wait=5.9)


def test_float_rounding_never_leaves_a_wait_too_small_to_pass(fake: FakeTime) -> None:
    def sleep(seconds: float) -> None:
        assert len(fake.slept) < 400, "waits too small to move the clock: acquire spins"
        fake.sleep(seconds)

    fake.now += 0.123456789
    t = AuthThrottle(bucket=TokenBucket(refill_seconds=0.7, clock=fake.clock), max_wait=3600,
                     sleep=sleep, store=MemoryStore())
    for _ in range(200):
        t.acquire(KEY, "nas07")
    assert fake.now - T0 == pytest.approx(195 * 0.7, abs=0.2)


def test_wall_clock_stepping_back_does_not_stretch_a_block(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore())
    t.block(KEY)
    fake.now -= 3600
    with pytest.raises(ThrottledError, match="allowed in 60 s"):  # not 3660 s
        t.acquire(KEY, "nas07", max_wait=0)
    fake.now += 60
    assert granted(t, 1) == 1


def test_separate_keys_have_separate_budgets(fake: FakeTime) -> None:
    t = throttle(fake, store=MemoryStore())
    assert granted(t, 9, "10.0.0.1:443") == 5
    t.block("10.0.0.2:443")
    assert granted(t, 9, "10.0.0.3:443") == 5
    assert granted(t, 1, "/var/run/middleware/middlewared.sock") == 1


def test_bucket_state_rejects_non_numbers() -> None:
    good = {"tokens": 1, "stamp": 2.5, "blocked_until": 0}
    assert BucketState.from_json(good) == BucketState(1, 2.5, 0)
    for bad in ({"tokens": "1", "stamp": 2, "blocked_until": 0}, {"tokens": 1, "stamp": 2},
                {"tokens": float("nan"), "stamp": 2, "blocked_until": 0}, [1, 2, 3],
                {"tokens": True, "stamp": 2, "blocked_until": 0}):
        with pytest.raises(ValueError):
            BucketState.from_json(bad)


# --- the shared state file -------------------------------------------------------------------

def test_default_store_is_the_shared_file(state_dir: Path) -> None:
    t = AuthThrottle()
    assert isinstance(t.store, FileStore) and t.store.dir == state_dir / BUDGET_DIR
    assert not state_dir.exists()  # no I/O in the constructor


def test_state_dir_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETCLT_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "xdg" / "fleetclt"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "fleetclt"
    monkeypatch.setenv("FLEETCLT_STATE_DIR", str(tmp_path / "explicit"))
    assert default_state_dir() == tmp_path / "explicit"


def test_two_throttles_on_one_state_dir_share_one_budget(state_dir: Path, fake: FakeTime) -> None:
    first, second = throttle(fake), throttle(fake)
    assert granted(first, 3) == 3
    assert granted(second, 9) == 2
    assert granted(first, 1) == 0
    assert stored(state_dir)[KEY]["tokens"] == pytest.approx(0.0)


def test_block_is_shared_between_processes(state_dir: Path, fake: FakeTime) -> None:
    throttle(fake).block(KEY)
    with pytest.raises(ThrottledError, match="allowed in 60 s"):
        throttle(fake).acquire(KEY, "nas07", max_wait=0)
    assert stored(state_dir)[KEY]["blocked_until"] == T0 + 60


def test_separate_keys_are_independent_in_the_file(state_dir: Path, fake: FakeTime) -> None:
    assert granted(throttle(fake), 9, "a:1") == 5
    assert granted(throttle(fake), 9, "b:1") == 5
    assert set(stored(state_dir)) == {"a:1", "b:1"}


def test_memory_store_keeps_off_the_disk(state_dir: Path, fake: FakeTime) -> None:
    first, second = throttle(fake, store=MemoryStore()), throttle(fake, store=MemoryStore())
    assert granted(first, 9) == 5 and granted(second, 9) == 5
    assert not state_dir.exists()


def test_created_dir_and_files_are_private(state_dir: Path, fake: FakeTime) -> None:
    nested = state_dir / "deeper"
    throttle(fake, store=FileStore(nested)).acquire(KEY, "nas07")
    assert stat.S_IMODE(nested.stat().st_mode) == 0o700
    assert stat.S_IMODE((nested / BUDGET_DIR).stat().st_mode) == 0o700
    assert stat.S_IMODE(FileStore(nested).path(KEY).stat().st_mode) == 0o600


def test_an_existing_dir_keeps_its_mode(state_dir: Path, fake: FakeTime) -> None:
    state_dir.mkdir(mode=0o755)
    os.chmod(state_dir, 0o755)
    throttle(fake).acquire(KEY, "nas07")
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o755


@pytest.mark.parametrize("content", [b"{not json", b'["a list"]', b'{"tokens": []}',
                                     b'{"tokens": "x", "stamp": 1}', b"\xff\xfe\x00"])
def test_corrupt_state_file_recovers(state_dir: Path, fake: FakeTime, caplog: pytest.LogCaptureFixture,
                                     content: bytes) -> None:
    path = FileStore(state_dir).path(KEY)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="fleetclt.client.throttle"):
        assert granted(throttle(fake), 9) == 5
    assert "starting fresh" in caplog.text
    assert stored(state_dir)[KEY]["tokens"] == pytest.approx(0.0)


def test_unreadable_state_file_does_not_crash(state_dir: Path, fake: FakeTime,
                                              caplog: pytest.LogCaptureFixture) -> None:
    FileStore(state_dir).path(KEY).mkdir(parents=True)  # opening it for writing fails
    with caplog.at_level(logging.WARNING, logger="fleetclt.client.throttle"):
        throttle(fake).acquire(KEY, "nas07")
    assert "budgets are kept in this process only" in caplog.text


@pytest.mark.parametrize("unusable", ["a file", "read-only"])
def test_an_unusable_state_dir_warns_once_and_every_session_shares_one_budget(
        tmp_path: Path, fake: FakeTime, caplog: pytest.LogCaptureFixture, unusable: str) -> None:
    """150 sessions (a throttle and a store each, as HostSession makes them) see one budget and one warning."""
    if unusable == "a file":
        (tmp_path / "file").write_text("")
        place = tmp_path / "file" / "state"
    elif os.geteuid() == 0:  # root writes into a 0500 directory; nobody creates files in /proc
        place = Path("/proc/self")
    else:
        place = tmp_path / "state"
        place.mkdir(mode=0o500)
    throttles = [throttle(fake, store=FileStore(place)) for _ in range(150)]
    with caplog.at_level(logging.WARNING, logger="fleetclt.client.throttle"):
        assert sum(granted(t, 1) for t in throttles) == 5, "one budget for the whole process"
    assert caplog.text.count("budgets are kept in this process only") == 1


def test_idle_full_entries_are_pruned(state_dir: Path, fake: FakeTime) -> None:
    t = throttle(fake)
    granted(t, 1, "idle:1")
    t.block("blocked:1", seconds=3600)
    fake.now += 500
    granted(t, 1, "recent:1")
    fake.now += 101
    granted(t, 1, "new:1")
    assert set(stored(state_dir)) == {"blocked:1", "recent:1", "new:1"}
    fake.now += 3600
    granted(t, 1, "new:1")
    assert set(stored(state_dir)) == {"new:1"}


def test_a_budget_file_is_kept_a_day_after_its_last_use(state_dir: Path) -> None:
    # Recreating the files cost a 1,000-host connect 0.1-0.2 s on every run more than 10
    # minutes after the last; and a process's first login sweeps, so kept files are not read.
    store = FileStore(state_dir)
    with store.transaction("written:1") as states:
        states["written:1"] = BucketState(tokens=5, stamp=0.0)  # idle by its contents
    now = time.time()
    for later in (0, FILE_KEEP - 700):  # sweeps run at most every 10 minutes
        store.sweep(lambda state: True, now + later)
        assert set(stored(state_dir)) == {"written:1"}
    store.sweep(lambda state: True, now + FILE_KEEP + 1)
    assert set(stored(state_dir)) == set()


def test_pruning_keeps_a_bucket_that_is_not_full_yet() -> None:
    bucket = TokenBucket(capacity=5, refill_seconds=600)
    store = MemoryStore()
    store.states.update({"slow": BucketState(tokens=0, stamp=0), "full": BucketState(tokens=5, stamp=0)})
    store.sweep(lambda state: bucket.is_idle(state, 601), 601)
    assert set(store.states) == {"slow"}


_WORKER = """
import os, sys, time
from fleetclt.errors import ThrottledError
from fleetclt.client.throttle import AuthThrottle, TokenBucket
go = sys.argv[1]
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
t = AuthThrottle(bucket=TokenBucket(clock=lambda: 1000.0), max_wait=0)  # frozen: no refill in the race
got = 0
for _ in range(3):
    try:
        t.acquire("10.9.9.9:443", "nas")
        got += 1
    except ThrottledError:
        pass
print(got)
"""


def test_processes_racing_on_one_state_dir_never_overspend(state_dir: Path, tmp_path: Path) -> None:
    go = tmp_path / "go"
    env = {**os.environ, "FLEETCLT_STATE_DIR": str(state_dir), "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, str(go)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(8)]
    assert [p.stdout.readline() for p in procs] == ["ready\n"] * 8  # all imported: the race is fair
    go.touch()
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    assert sum(int(out) for out, _ in outputs) == 5


# --- backoff ---------------------------------------------------------------------------------

def test_backoff_is_full_jitter_up_to_the_capped_exponential() -> None:
    calls: list[tuple[float, float]] = []

    def rand(low: float, high: float) -> float:
        calls.append((low, high))
        return high

    backoff = Backoff(base=0.5, cap=30.0, rand=rand)
    assert [backoff.delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert all(low == 0.0 for low, _ in calls)
    assert backoff.delay(10_000) == 30.0  # no overflow for a very long outage


def test_backoff_delays_fall_in_range_with_real_randomness() -> None:
    backoff = Backoff(base=1.0, cap=10.0)
    for attempt in range(12):
        for _ in range(50):
            assert 0.0 <= backoff.delay(attempt) <= min(10.0, 2.0 ** attempt)
    assert Backoff(rand=lambda low, high: low).delay(5) == 0.0
