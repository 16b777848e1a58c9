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


def test_hundred_keys_refuse_everyone_and_the_101st_key_unblocks(clock):
    limiter = RateLimiter(clock)
    for i in range(100):
        limiter.allow("core.ping", f"10.0.{i // 250}.{i % 250}")
    assert len(limiter) == 100
    assert not limiter.allow("core.ping", "10.9.9.9")
    assert len(limiter) == 100, "a refused call at the cap adds no key"


def test_whole_table_cleared_every_600_seconds(clock):
    limiter = RateLimiter(clock)
    for i in range(100):
        limiter.allow("core.ping", f"10.0.0.{i}")
    clock.advance(599)
    assert not limiter.allow("core.ping", "10.0.0.1"), "still at the 100-key cap"
    clock.advance(1)
    assert limiter.allow("core.ping", "10.0.0.1") and len(limiter) == 1


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
