"""Two-factor logins: OTP_REQUIRED, login_ex_continue and the wrong-code limits of each version.

Modelled on plugins/auth.py (TS-25.04.2.6, TS-25.10.1, and TS-24.10.2 for auth.login's otp_token),
plugins/auth_/login_ex_impl.py (TS-26.0.0-BETA.2) and plugins/account_/2fa.py (pyotp TOTP).
"""
from __future__ import annotations

import errno

import pyotp
import pytest

from fleetclt.sim import ManualClock
from tests.sim.auth_helpers import PASSWORD, SECRET, ddp_call, ddp_connect, error_errno, login_ex


@pytest.fixture
def otp_host(make_host):
    def make(version="25.10.1", **config):
        return make_host(clock=ManualClock(speed=1000), version=version, otp_secrets={"admin": SECRET}, **config)
    return make


def code(host, offset=0.0):
    return pyotp.TOTP(SECRET).at(host.clock.wall() + offset)


def continue_otp(client, otp):
    return client.result("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": otp})


def test_password_then_code_logs_in_with_two_factor(otp_host, client_for):
    """auth.py login_ex: PASSWORD_PLAIN answers OTP_REQUIRED with the username; OTP_TOKEN ends it."""
    host = otp_host()
    client = client_for(host)
    assert login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD) == {
        "response_type": "OTP_REQUIRED", "username": "admin"}
    assert client.call("system.info")["error"]["data"]["error"] == 207
    reply = continue_otp(client, code(host))
    assert reply["response_type"] == "SUCCESS" and reply["user_info"]["two_factor_config"]["secret_configured"]
    assert host.counters.logins_two_factor == 1 and host.counters.logins_password == 0
    assert client.result("auth.me")["pw_name"] == "admin"


def test_wrong_password_gets_no_otp_prompt(otp_host, client_for):
    client = client_for(otp_host())
    assert login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password="wrong") == {
        "response_type": "AUTH_ERR"}


@pytest.mark.parametrize("version", ["25.04.2", "25.10.1"])
def test_three_wrong_codes_may_be_retried_the_fourth_ends_the_login(otp_host, client_for, version):
    """auth.py MAX_OTP_ATTEMPTS = 3: OTP_REQUIRED after each of three wrong codes, then AUTH_ERR."""
    host = otp_host(version)
    client = client_for(host)
    login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)
    answers = [continue_otp(client, "000000")["response_type"] for _ in range(4)]
    assert answers == ["OTP_REQUIRED"] * 3 + ["AUTH_ERR"]
    assert host.counters.logins_failed == 4 and host.counters.logins_ok == 0
    late = client.call("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": code(host)})
    assert error_errno(late) == errno.EINVAL and "no authentication in progress" in late["error"]["data"]["reason"]


def test_26_ends_the_login_at_the_first_wrong_code(otp_host, client_for):
    """login_ex_impl.py login_ex_oath_token: the PAM conversation ends with the first wrong code."""
    host = otp_host("26.0.0-BETA.2")
    client = client_for(host)
    login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)
    assert continue_otp(client, "000000") == {"response_type": "AUTH_ERR"}
    assert error_errno(client.call("auth.login_ex_continue", {"mechanism": "OTP_TOKEN", "otp_token": code(host)})) \
        == errno.EINVAL


def test_otp_token_without_a_prompt_is_einval(otp_host, client_for):
    client = client_for(otp_host())
    reply = client.call("auth.login_ex", {"mechanism": "OTP_TOKEN", "otp_token": "123456"})
    assert error_errno(reply) == errno.EINVAL


def test_another_mechanism_abandons_the_prompt(otp_host, client_for):
    """check_auth_mechanism: a step out of turn discards the login in progress."""
    host = otp_host(api_keys={"7-" + "k" * 64: "admin"})
    client = client_for(host)
    login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)
    assert login_ex(client, mechanism="API_KEY_PLAIN", username="admin", api_key="7-" + "k" * 64)[
        "response_type"] == "SUCCESS"


def test_window_zero_takes_only_the_current_step(otp_host, client_for):
    """2fa.py verify: valid_window from the two-factor settings, 0 by default."""
    strict, lenient = otp_host(), otp_host(name="nas02", otp_window=1)
    for host, expected in ((strict, "OTP_REQUIRED"), (lenient, "SUCCESS")):
        client = client_for(host)
        login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password=PASSWORD)
        assert continue_otp(client, code(host, -30))["response_type"] == expected


def test_auth_login_takes_the_code_as_third_argument(otp_host, client_for):
    """auth.py login (25.04+): a wrapper that continues OTP_REQUIRED with `otp_token`; false without it."""
    host = otp_host()
    assert client_for(host).result("auth.login", "admin", PASSWORD) is False
    assert client_for(host).result("auth.login", "admin", PASSWORD, "000000") is False
    assert client_for(host).result("auth.login", "admin", PASSWORD, code(host)) is True


def test_24_10_login_checks_the_code_in_one_call(otp_host, client_for):
    """TS-24.10.2 auth.py login/get_login_user: false for a missing or wrong code, after 1-5 s."""
    host = otp_host("24.10.2")
    client = client_for(host)
    ddp_connect(client)
    assert ddp_call(client, "auth.login", "admin", PASSWORD, msg_id="a")["result"] is False
    assert ddp_call(client, "auth.login", "admin", PASSWORD, code(host), msg_id="b")["result"] is True
    assert host.counters.logins_failed == 1 and host.counters.logins_password == 1
