"""Session tokens: auth.generate_token, TOKEN_PLAIN and auth.login_with_token per version.

Modelled on plugins/auth.py (TokenManager, Token, generate_token, login_with_token) at TS-24.10.2,
TS-25.10.1 and TS-26.0.0-BETA.2 (login_ex `reconnect_token`), auth.py TokenSessionManagerCredentials
(a token session's logout destroys its token) and utils/origin.py (`match`).
"""
from __future__ import annotations

import dataclasses
import errno

import pytest

from fleetclt.sim import ManualClock
from tests.sim.auth_helpers import PASSWORD, ddp_call, ddp_connect, error_errno, login_ex


@pytest.fixture
def clocked(make_host):
    def make(**config):
        return make_host(clock=ManualClock(speed=1000), **config)
    return make


def token_for(client, *args):
    client.login()
    return client.result("auth.generate_token", *args)


def token_login(client, token, **options):
    return login_ex(client, mechanism="TOKEN_PLAIN", token=token, login_options=options)["response_type"]


def test_token_logs_in_another_connection_as_its_maker(clocked, client_for):
    host = clocked()
    token = token_for(client_for(host))
    other = client_for(host)
    assert token_login(other, token) == "SUCCESS"
    assert other.result("auth.me")["pw_name"] == "admin"
    assert (host.counters.logins_password, host.counters.logins_token) == (1, 1)


def test_token_expires_after_ttl_without_use(clocked, client_for):
    """Token.is_valid: last use + ttl (default 600 s) on the server's clock."""
    host = clocked()
    token = token_for(client_for(host), 60)
    host.clock.advance(61)
    assert token_login(client_for(host), token) == "AUTH_ERR"
    assert host.counters.logins_failed == 1


def test_token_dies_with_middlewared(clocked, client_for):
    host = clocked()
    token = token_for(client_for(host))
    host.restart()
    assert token_login(client_for(host), token) == "AUTH_ERR"


def test_token_outlives_the_connection_that_made_it(clocked, client_for):
    host = clocked()
    maker = client_for(host)
    token = token_for(maker)
    maker.close()
    assert token_login(client_for(host), token) == "SUCCESS"


def test_a_token_session_takes_its_token_with_it(clocked, client_for):
    """TokenSessionManagerCredentials.logout destroys the token: one reconnect per token."""
    host = clocked()
    token = token_for(client_for(host))
    user = client_for(host)
    assert token_login(user, token) == "SUCCESS"
    assert user.result("auth.logout") is True
    assert token_login(client_for(host), token) == "AUTH_ERR"


def test_a_token_session_can_make_the_next_token(clocked, client_for):
    """TokenManager.create: a token made in a token session belongs to the original credential."""
    host = clocked()
    user = client_for(host)
    assert token_login(user, token_for(client_for(host))) == "SUCCESS"
    following = user.result("auth.generate_token")
    user.close()
    assert token_login(client_for(host), following) == "SUCCESS"


def test_token_session_idle_past_ttl_is_logged_out(clocked, client_for):
    """A token session is valid while its token is: messages keep it alive, silence ends it (207)."""
    host = clocked()
    user = client_for(host)
    token_login(user, token_for(client_for(host), 100))
    host.clock.advance(90)
    assert user.result("core.ping") == "pong"
    host.clock.advance(90)
    assert user.result("system.boot_id")
    host.clock.advance(101)
    assert user.call("system.info")["error"]["data"]["error"] == 207


def test_match_origin_compares_the_remote_address(clocked, client_for):
    """origin.py match: the same remote address; a client that now comes through a proxy is another origin."""
    host = clocked()
    maker = client_for(host)
    bound, free = token_for(maker), maker.result("auth.generate_token", 600, {}, False)
    host.config = dataclasses.replace(host.config, proxied_from="192.0.2.7")
    assert token_login(client_for(host), bound) == "AUTH_ERR"
    assert token_login(client_for(host), free) == "SUCCESS"


def test_single_use_and_attribute_tokens(clocked, client_for):
    """25.04+: single_use tokens go on first use; tokens with attrs are for file transfers, not logins."""
    host = clocked()
    maker = client_for(host)
    once = token_for(maker, 600, {}, True, True)
    download = maker.result("auth.generate_token", 600, {"filename": "debug.tgz"})
    assert token_login(client_for(host), once) == "SUCCESS"
    assert token_login(client_for(host), once) == "AUTH_ERR"
    assert token_login(client_for(host), download) == "AUTH_ERR"


def test_generate_token_needs_a_login(client):
    assert error_errno(client.call("auth.generate_token")) == 207


def test_login_with_token_wraps_token_plain(clocked, client_for):
    host = clocked()
    token = token_for(client_for(host))
    assert client_for(host).result("auth.login_with_token", "nope") is False
    assert client_for(host).result("auth.login_with_token", token) is True


def test_26_login_ex_hands_out_a_single_use_reconnect_token(clocked, client_for):
    """26.0 login_ex: `reconnect_token` login option -> single-use, origin-bound token; null when not asked."""
    host = clocked(version="26.0.0-BETA.2")
    plain = login_ex(client_for(host), mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)
    assert plain["reconnect_token"] is None
    reply = login_ex(client_for(host), mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD,
                     login_options={"reconnect_token": True})
    assert token_login(client_for(host), reply["reconnect_token"]) == "SUCCESS"
    assert token_login(client_for(host), reply["reconnect_token"]) == "AUTH_ERR"


def test_24_10_tokens(clocked, client_for):
    """TS-24.10.2: generate_token(ttl, attrs, match_origin) raises EACCES without a login;
    login_with_token answers false (no delay) for an unknown token, null for one with attrs."""
    host = clocked(version="24.10.2")
    maker = client_for(host)
    ddp_connect(maker)
    assert ddp_call(maker, "auth.generate_token", msg_id="e")["error"]["error"] == errno.EACCES
    assert ddp_call(maker, "auth.login", "admin", PASSWORD, msg_id="l")["result"] is True
    token = ddp_call(maker, "auth.generate_token", msg_id="t")["result"]
    download = ddp_call(maker, "auth.generate_token", 600, {"filename": "x"}, msg_id="d")["result"]
    assert "error" in ddp_call(maker, "auth.generate_token", 600, {}, True, True, msg_id="s")
    user = client_for(host)
    ddp_connect(user)
    assert ddp_call(user, "auth.login_with_token", "nope", msg_id="a")["result"] is False
    assert ddp_call(user, "auth.login_with_token", download, msg_id="b")["result"] is None
    assert ddp_call(user, "auth.login_with_token", token, msg_id="c")["result"] is True
