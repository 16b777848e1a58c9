"""The unauthenticated-call rate limiter, with a manual clock (no waiting on windows)."""
from __future__ import annotations

import pytest

from fleetclt.sim import ManualClock
from fleetclt.sim.ratelimit import RateLimiter


@pytest.fixture
def clock():
    return ManualClock(speed=1000)


def test_twenty_calls_per_fixed_window_then_refused(clock):
    limiter = RateLimiter(clock)
    assert all(limiter.allow("auth.login_ex", "10.0.0.1") for _ in range(20))
    assert not limiter.allow("auth.login_ex", "10.0.0.1")
    assert limiter.allow("core.ping", "10.0.0.1"), "each method has its own counter"
    assert limiter.allow("auth.login_ex", "10.0.0.2"), "each source address has its own counter"
    clock.advance(59.9)
    assert not limiter.allow("auth.login_ex", "10.0.0.1"), "the window is fixed, not sliding"
    clock.advance(0.1)
    assert limiter.allow("auth.login_ex", "10.0.0.1")


def test_refused_calls_count_too(clock):
    limiter = RateLimiter(clock)
    for _ in range(40):
        limiter.allow("auth.login_ex", "10.0.0.1")
    clock.advance(30)
    assert not limiter.allow("auth.login_ex", "10.0.0.1")


def test_hundred_key_cap_in_the_servers_order(clock):
    """utils/rate_limit/cache.py: `add()` inserts the key before `max_entries_reached` compares
    len(RL_CACHE) == 100, and main.py builds `any((...))` eagerly, so `rate_limit_exceeded`
    counts every call, those the cap refuses too."""
    limiter = RateLimiter(clock)
    ips = [f"10.0.{i // 250}.{i % 250}" for i in range(101)]
    assert all(limiter.allow("auth.login_ex", ip) for ip in ips[:99])
    assert not limiter.allow("auth.login_ex", ips[99]), "the 100th key is inserted, then refused"
    assert len(limiter) == 100, "a refused call keeps its key"
    assert not any(limiter.allow("auth.login_ex", ips[0]) for _ in range(19)), "at exactly 100 keys all wait"
    assert limiter.allow("auth.login_ex", ips[100]) and len(limiter) == 101, "a 101st key ends the equality"
    assert limiter.allow("core.ping", ips[0]), "and everyone passes again"
    assert not limiter.allow("auth.login_ex", ips[0]), "its 21st call: the refused ones were counted"


def test_whole_table_cleared_every_600_seconds_from_the_start(clock):
    """plugins/rate_limit: `@periodic(600, run_on_start=False)`, on its own schedule, not 600 s
    after some call."""
    limiter = RateLimiter(clock)
    for i in range(100):
        limiter.allow("core.ping", f"10.0.0.{i}")
    clock.advance(599.9)
    assert not limiter.allow("core.ping", "10.0.0.1"), "still at the 100-key cap"
    clock.advance(50.1)
    assert limiter.allow("core.ping", "10.0.0.1") and len(limiter) == 1, "cleared at 600 s"
    for i in range(2, 100):
        limiter.allow("core.ping", f"10.0.0.{i}")
    assert not limiter.allow("core.ping", "10.0.0.100")
    clock.advance(550)
    assert limiter.allow("core.ping", "10.0.0.1") and len(limiter) == 1, "cleared again at 1200 s"


def pings(client, count):
    ids = [client.request("core.ping") for _ in range(count)]
    return [client.reply(i) for i in ids]


def test_server_refuses_the_21st_unauthenticated_call_with_ebusy(make_host, client_for, clock):
    host = make_host(clock=clock)
    first, second = client_for(host), client_for(host)
    assert all(r["result"] == "pong" for r in pings(first, 20))
    refused = second.call("core.ping")  # another connection, same source address
    data = refused["error"]["data"]
    assert refused["error"]["code"] == -32001
    assert (data["error"], data["errname"], data["reason"]) == (16, "EBUSY", "[EBUSY] Rate Limit Exceeded")
    assert host.counters.rate_limited == 1
    assert second.result("core.set_options", {}) is not None, "set_options is never limited"
    clock.advance(60)
    assert second.result("core.ping") == "pong"


def test_authenticated_and_gated_calls_do_not_count(make_host, client_for, clock):
    host = make_host(clock=clock)
    client = client_for(host)
    for _ in range(25):
        assert client.call("core.subscribe", "core.get_jobs")["error"]["data"]["error"] == 207
    client.login()
    assert all(r["result"] == "pong" for r in pings(client, 20) + pings(client, 5))
    assert host.counters.rate_limited == 0


def test_unix_socket_clients_are_exempt(make_host, tmp_path, clock):
    from tests.wsclient import WsClient
    path = str(tmp_path / "middlewared.sock")
    host = make_host(clock=clock, unix_path=path)
    client = WsClient("ws://localhost/api/current", unix_path=path)
    try:
        assert all(r["result"] == "pong" for r in pings(client, 20) + pings(client, 5))
        assert host.counters.rate_limited == 0
    finally:
        client.close()
