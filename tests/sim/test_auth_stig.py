"""STIG mode (authenticator assurance level 2): refused mechanisms, mandatory OTP, slower
failures and the 12 h / 30 min session limits on the simulator's clock.

Modelled on utils/auth.py (AA_LEVEL2) and plugins/auth.py (check_auth_mechanism,
generate_token, login_ex) at TS-25.10.1, and on TS-26.0.0-BETA.2 / BETA.3 for SCRAM.
"""
from __future__ import annotations

import errno
import time

import pyotp
import pytest

from fleetclt.sim import ManualClock, SimClock
from tests.sim.auth_helpers import PASSWORD, SECRET, error_errno, login_ex

KEY = "7-" + "k" * 64


@pytest.fixture
def stig_host(make_host):
    def make(version="25.10.1", clock=None, **config):
        return make_host(version=version, stig=True, clock=clock or ManualClock(speed=1000),
                         api_keys={KEY: "admin"}, otp_secrets={"admin": SECRET}, **config)
    return make


def two_factor_login(client, host):
    assert login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)[
        "response_type"] == "OTP_REQUIRED"
    otp = pyotp.TOTP(SECRET).at(host.clock.wall())
    return client.result("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": otp})


def test_only_passwords_with_a_second_factor(stig_host, client_for):
    host = stig_host()
    client = client_for(host)
    assert two_factor_login(client, host)["authenticator"] == "LEVEL_2"
    assert client.result("auth.mechanism_choices") == ["PASSWORD_PLAIN"]  # asked logged in: see test_auth.py


@pytest.mark.parametrize("data", [{"mechanism": "API_KEY_PLAIN", "username": "admin", "api_key": KEY},
                                  {"mechanism": "TOKEN_PLAIN", "token": "x"}])
def test_keys_and_tokens_are_eopnotsupp(stig_host, client_for, data):
    """check_auth_mechanism: CallError EOPNOTSUPP, before the credential is looked at."""
    host = stig_host()
    reply = client_for(host).call("auth.login_ex", data)
    assert error_errno(reply) == errno.EOPNOTSUPP
    assert "mechanism is not supported at current authenticator level" in reply["error"]["data"]["reason"]
    assert host.counters.logins_failed == 0 and not host.revoked_keys


def test_the_deprecated_key_login_raises_too(stig_host, client_for):
    assert error_errno(client_for(stig_host()).call("auth.login_with_api_key", KEY)) == errno.EOPNOTSUPP


def test_password_without_second_factor_fails_after_four_seconds(make_host, client_for):
    """AA_LEVEL2 min_fail_delay 4: a right password for a user without 2FA is AUTH_ERR, 4-5 s late."""
    host = make_host(stig=True, clock=SimClock(speed=100))
    client = client_for(host)
    started = time.monotonic()
    assert login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD) == {
        "response_type": "AUTH_ERR"}
    assert time.monotonic() - started >= 4.0 / 100


def test_only_single_use_tokens(stig_host, client_for):
    host = stig_host()
    client = client_for(host)
    two_factor_login(client, host)
    assert error_errno(client.call("auth.generate_token")) == errno.EOPNOTSUPP
    assert client.result("auth.generate_token", 600, {}, True, True)


def test_idle_sessions_end_after_30_minutes(stig_host, client_for):
    host = stig_host()
    client = client_for(host)
    two_factor_login(client, host)
    host.clock.advance(29 * 60)
    assert client.result("core.ping") == "pong"
    host.clock.advance(31 * 60)
    assert client.call("system.info")["error"]["data"]["error"] == 207


def test_busy_sessions_end_after_12_hours(stig_host, client_for):
    host = stig_host()
    client = client_for(host)
    two_factor_login(client, host)
    for _ in range(12 * 3):
        host.clock.advance(20 * 60)
        assert client.result("system.boot_id")
    host.clock.advance(60)
    assert client.call("system.info")["error"]["data"]["error"] == 207


def test_level_1_sessions_have_no_idle_limit(make_host, client_for):
    host = make_host(clock=ManualClock(speed=1000))
    client = client_for(host)
    client.login()
    host.clock.advance(29 * 86400)
    assert client.result("system.info")["hostname"] == "nas01"


@pytest.mark.parametrize(("version", "choices"), [("26.0.0-BETA.2", ["PASSWORD_PLAIN", "SCRAM"]),
                                                  ("26.0.0-BETA.3", ["PASSWORD_PLAIN"])])
def test_scram_at_level_2_only_in_26_beta_2(stig_host, client_for, version, choices):
    """AA_LEVEL2 mechanisms: BETA.3 drops SCRAM (the API key stack cannot ask for a second factor)."""
    assert client_for(stig_host(version)).result("auth.mechanism_choices") == choices
