"""Session tokens: reconnects log in with a token, the password goes to the host once per session.

The server side is the simulator's model of plugins/auth.py (TokenManager, generate_token,
login_with_token, login_ex TOKEN_PLAIN) and auth.py (TokenSessionManagerCredentials) at
TS-24.10.2, TS-25.04.2.6, TS-25.10.1 and TS-26.0.0-BETA.3: a token lives while used within
its ttl, a session logged in with it destroys it when it ends, tokens die with middlewared,
and STIG (level 2) refuses multi-use tokens with EOPNOTSUPP. Cuts are real socket resets
made by tests/faultproxy.py.
"""
from __future__ import annotations

import logging

import pyotp
import pytest

from fleetclt.client.session import Credentials, Timeouts
from fleetclt.client.throttle import AuthThrottle, MemoryStore, TokenBucket
from fleetclt.sim import ManualClock, SimClock
from tests.client.fake_time import FakeTime
from tests.client.proxied import cut
from tests.helpers import wait_until

TTL = 600  # Timeouts.session_token's default


def called(host, method):
    return host.counters.calls_by_method[method]


@pytest.mark.parametrize("version", ["25.04.2.6", "25.10.1", "26.0.0-BETA.3"])
def test_reconnects_after_cuts_log_in_with_tokens_and_the_password_goes_once(make_host, proxied, version):
    host = make_host(version=version)
    session, proxy = proxied(host)
    session.connect()
    for tokens in range(1, 4):
        wait_until(lambda: session.stats.tokens == tokens)  # noqa: B023 (waited for at once)
        cut(session, proxy)
        assert session.call("core.ping") == "pong"
    seen = host.counters
    assert (seen.logins_password, seen.logins_token, seen.logins_failed) == (1, 3, 0)
    assert (session.stats.primary_logins, session.stats.token_logins, session.stats.logins) == (1, 3, 4)
    assert proxy.connections == 4


def test_a_24_10_host_logs_in_with_login_with_token(make_host, proxied):
    """TS-24.10.2: no login_ex; generate_token(ttl, attrs, match_origin) and login_with_token's bool."""
    host = make_host(version="24.10.2")
    session, proxy = proxied(host)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert called(host, "auth.login_with_token") == 1 and called(host, "auth.login") == 1
    assert (host.counters.logins_password, host.counters.logins_token, host.counters.logins_failed) == (1, 1, 0)


def test_a_restart_logs_in_with_the_password_once_without_trying_the_dead_token(make_host, proxied):
    """Tokens die with middlewared: a new boot id says so before any login is sent."""
    host = make_host()
    session, proxy = proxied(host)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    host.restart()
    assert session.call("core.ping", retry_safe=True) == "pong"
    assert session.stats.restarts_seen == 1
    wait_until(lambda: session.stats.tokens == 2)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    seen = host.counters
    assert (seen.logins_password, seen.logins_token, seen.logins_failed) == (2, 1, 0), "no doomed token login"


def test_a_token_the_server_let_expire_falls_back_to_the_password_once(make_host, proxied):
    """The server's clock jumps past the ttl of an unused token: TOKEN_PLAIN is AUTH_ERR, the
    password logs in on the same connection, and the next reconnect uses a new token again."""
    host = make_host(clock=ManualClock())
    session, proxy = proxied(host)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    host.clock.advance(TTL + 1)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert (host.counters.logins_password, host.counters.logins_failed) == (2, 1)
    assert proxy.connections == 2, "the fallback used the same connection"
    wait_until(lambda: session.stats.tokens == 2)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert (host.counters.logins_password, host.counters.logins_token, host.counters.logins_failed) == (2, 1, 1)


def test_a_fallback_login_spends_its_own_token_of_the_login_budget(make_host, proxied):
    """The server counts the refused token login and the password login: so does the budget."""
    fake = FakeTime()
    throttle = AuthThrottle(bucket=TokenBucket(2, 6, fake.clock), sleep=fake.sleep, store=MemoryStore())
    host = make_host(clock=ManualClock())
    session, proxy = proxied(host, throttle=throttle)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    host.clock.advance(TTL + 1)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert fake.slept == [pytest.approx(6)], "the third login of the run waited for the budget"
    assert (host.counters.logins_failed, host.counters.logins_password) == (1, 2)


def test_a_used_connection_renews_its_token_before_it_expires(make_host, proxied):
    """Nobody logs in with a held token, so the server's ttl runs from its making: while the
    session makes calls, a new one is asked for half-way."""
    host = make_host(clock=SimClock(speed=1))
    session, proxy = proxied(host, timeouts=Timeouts(connect=5, call=10, session_token=2, session_token_after=0))
    session.connect()
    wait_until(lambda: session.call("core.ping") == "pong" and session.stats.tokens == 3)  # renewed twice
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert (host.counters.logins_password, host.counters.logins_token, host.counters.logins_failed) == (1, 1, 0)


def test_an_idle_connection_lets_its_token_lapse_and_renews_it_when_used_again(make_host, proxied):
    """Each generate_token is an audited call (plugins/auth.py, 25.04+): an idle session asks for
    none, however many keepalives go by past half the token's ttl; its next call asks for one.
    The session's token clock is moved by hand; the keepalive runs on real time."""
    host = make_host()
    session, proxy = proxied(host, timeouts=Timeouts(connect=5, call=10, keepalive=0.1, session_token_after=0))
    now = [0.0]
    session._tokens._clock = lambda: now[0]
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    now[0] += TTL * 0.75
    pings = called(host, "core.ping")
    wait_until(lambda: called(host, "core.ping") >= pings + 3)  # three keepalive rounds, idle
    assert called(host, "auth.generate_token") == 1, "no renewal while idle"
    assert session.call("system.info")["hostname"] == "nas01"
    wait_until(lambda: session.stats.tokens == 2)
    assert called(host, "auth.generate_token") == 2


def test_a_token_older_than_its_ttl_is_not_tried(make_host, proxied):
    """No keepalive, no renewal (26.0's nginx allows that): a token past its ttl is dropped unsent.
    Both clocks are moved by hand: the server's (ManualClock) and the session's token clock."""
    host = make_host(version="26.0.0-BETA.3", clock=ManualClock())
    session, proxy = proxied(host, timeouts=Timeouts(connect=5, call=10, keepalive=None, silence=None,
                                                     session_token_after=0))
    now = [0.0]
    session._tokens._clock = lambda: now[0]
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    now[0] += TTL
    host.clock.advance(TTL)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert (host.counters.logins_password, host.counters.logins_token, host.counters.logins_failed) == (2, 0, 0)


def test_the_first_call_does_not_wait_for_the_token(make_host, session_for):
    """The token request goes out from the background once the caller's call is out, and nobody
    waits for it: with the host never answering it, calls still go and come back."""
    host = make_host()
    host.set_stall(True, frozenset({"auth.generate_token"}))
    session = session_for(host)
    assert session.call("core.ping") == "pong"
    wait_until(lambda: called(host, "auth.generate_token") == 1)
    assert session.call("system.info")["hostname"] == "nas01"
    assert session.in_flight == 0 and session.stats.tokens == 0
    host.set_stall(False)
    wait_until(lambda: session.stats.tokens == 1)


def test_a_stig_host_makes_no_tokens_and_is_not_asked_again(make_host, proxied, caplog):
    """plugins/auth.py generate_token at level 2: EOPNOTSUPP for a multi-use token. The session
    logs in with a password and a two-factor code, stops asking for tokens, quietly (debug log),
    never sends TOKEN_PLAIN, and logs in after a cut with the password and a code again."""
    secret = pyotp.random_base32()
    host = make_host(version="25.10.1", stig=True, clock=SimClock(speed=1), otp_secrets={"admin": secret})
    session, proxy = proxied(host, credentials=Credentials("admin", "fleetclt-sim", otp_secret=secret))
    with caplog.at_level(logging.DEBUG, logger="fleetclt.client.tokens"):
        assert session.call("auth.me")["pw_name"] == "admin"
        wait_until(lambda: "no session tokens from this host" in caplog.text)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert called(host, "auth.generate_token") == 1, "never asked again"
    assert (host.counters.logins_two_factor, host.counters.logins_token, host.counters.logins_failed) == (2, 0, 0)
    assert session.stats.tokens == 0 and session.stats.token_logins == 0


def test_no_token_without_a_credential(host, session_for):
    session = session_for(host, credentials=Credentials())
    assert session.call("system.boot_id") == host.boot_id
    assert called(host, "auth.generate_token") == 0


def test_tokens_can_be_switched_off(host, session_for):
    session = session_for(host, timeouts=Timeouts(connect=5, call=10, session_token=None))
    assert session.call("core.ping") == "pong"
    host.drop_connections()
    assert session.call("core.ping", retry_safe=True) == "pong"
    assert called(host, "auth.generate_token") == 0 and host.counters.logins_password == 2


def test_the_token_is_never_shown(host, session_for):
    session = session_for(host)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)
    held = session._tokens._held
    assert held is not None and held.value.reveal() not in repr(held) + repr(session._tokens) + repr(session)


def test_a_session_asks_for_its_first_token_only_once_it_has_lived_a_while(make_host, session_for):
    """Every generate_token is audited (plugins/auth.py, 25.04+), and a token pays only for a
    session that reconnects: a session closed within `session_token_after` of its first login
    (a one-shot `fleetclt call`) asked for none; one that lives on gets one then."""
    host = make_host()
    short = session_for(host, timeouts=Timeouts(connect=5, call=10, session_token_after=3600))
    assert short.call("core.ping") == "pong" and short.call("system.info")["hostname"] == "nas01"
    short.close()
    assert called(host, "auth.generate_token") == 0 and short.stats.tokens == 0
    lasting = session_for(host, timeouts=Timeouts(connect=5, call=10, session_token_after=0.2))
    assert lasting.call("core.ping") == "pong"
    wait_until(lambda: lasting.stats.tokens == 1)
    assert called(host, "auth.generate_token") == 1
