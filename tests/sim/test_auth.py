"""auth.* methods: every login outcome, API-key revocation, logout and expiry."""
from __future__ import annotations

import pytest

from fleetclt.sim import ManualClock

KEY = "7-Zm9vYmFyYmF6"


def login_ex(client, **data):
    return client.result("auth.login_ex", data)


@pytest.fixture
def keyed_host(make_host):
    return make_host(api_keys={KEY: "admin"})


def test_password_success_shape(client):
    """plugins/auth.py `login_ex` (TS-25.10.1): SUCCESS has user_info and authenticator, no reconnect_token."""
    reply = login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password="fleetclt-sim")
    assert reply["response_type"] == "SUCCESS" and reply["authenticator"] == "LEVEL_1"
    assert "reconnect_token" not in reply and reply["user_info"]["pw_name"] == "admin"
    assert client.result("auth.me")["pw_uid"] == reply["user_info"]["pw_uid"]


def test_user_info_can_be_turned_off(client):
    reply = login_ex(client, mechanism="PASSWORD_PLAIN", username="admin", password="fleetclt-sim",
                     login_options={"user_info": False})
    assert reply["response_type"] == "SUCCESS" and reply["user_info"] is None


def test_wrong_password_and_unknown_user_are_one_auth_err_after_a_delay(make_host, client_for):
    clock = ManualClock(speed=1000)
    host = make_host(clock=clock)
    client = client_for(host)
    for username in ("admin", "nobody"):
        assert login_ex(client, mechanism="PASSWORD_PLAIN", username=username,
                        password="wrong") == {"response_type": "AUTH_ERR"}
    assert host.counters.logins_failed == 2 and host.counters.logins_ok == 0
    assert client.call("system.info")["error"]["data"]["error"] == 207


def test_login_validation_shapes(client):
    missing = client.call("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": "admin"})
    assert missing["error"]["data"]["extra"] == [["login_data.PASSWORD_PLAIN.password", "Field required", 22]]
    no_tag = client.call("auth.login_ex", {"username": "admin"})
    assert no_tag["error"]["data"]["extra"] == [["login_data.mechanism", "Field required", 22]]
    bad_tag = client.call("auth.login_ex", {"mechanism": "MAGIC"})["error"]["data"]["extra"]
    assert bad_tag[0][0] == "login_data" and "MAGIC" in bad_tag[0][1]


def test_api_key_plain_over_loopback_is_secure(keyed_host, client_for):
    client = client_for(keyed_host)
    reply = login_ex(client, mechanism="API_KEY_PLAIN", username="admin", api_key=KEY)
    assert reply["response_type"] == "SUCCESS"
    assert client.result("system.info")["hostname"] == "nas01"


def test_plain_key_over_insecure_transport_is_revoked(make_host, client_for):
    host = make_host(api_keys={KEY: "admin"}, loopback_secure=False)
    client = client_for(host)
    assert login_ex(client, mechanism="API_KEY_PLAIN", username="admin",
                    api_key=KEY) == {"response_type": "EXPIRED"}
    assert KEY in host.revoked_keys
    again = login_ex(client, mechanism="API_KEY_PLAIN", username="admin", api_key=KEY)
    assert again == {"response_type": "AUTH_ERR"}
    assert client.call("system.info")["error"]["data"]["error"] == 207


def test_api_key_needs_its_owner(keyed_host, client_for):
    client = client_for(keyed_host)
    assert login_ex(client, mechanism="API_KEY_PLAIN", username="root", api_key=KEY)["response_type"] == "AUTH_ERR"


def test_deprecated_logins_return_booleans(keyed_host, client_for):
    client = client_for(keyed_host)
    assert client.result("auth.login", "admin", "wrong") is False
    assert client.result("auth.login", "admin", "fleetclt-sim") is True
    other = client_for(keyed_host)
    assert other.result("auth.login_with_api_key", "1-nope") is False
    assert other.result("auth.login_with_api_key", KEY) is True
    assert other.result("core.ping") == "pong"


def test_logout_keeps_the_connection_but_ends_the_session(client):
    client.login()
    assert client.result("auth.logout") is True
    assert client.call("auth.me")["error"]["data"]["errname"] == "ENOTAUTHENTICATED"
    assert client.result("core.ping") == "pong"


def test_expired_sessions_get_207_on_next_call(client, host):
    client.login()
    host.expire_sessions()
    assert client.call("system.info")["error"]["data"]["error"] == 207


@pytest.mark.parametrize(("version", "before_login"), [("25.04.0", True), ("25.04.2.6", False), ("25.10.1", False),
                                                       ("26.0.0-BETA.3", True)])
def test_mechanism_choices_before_a_login_fail_on_25_04_2_to_25_10(make_host, client_for, version, before_login):
    """plugins/auth.py `mechanism_choices`: from TS-25.04.2 to TS-25.10.6 it reads
    `app.authenticated_credentials.may_create_auth_token` unchecked, so before a login the
    AttributeError comes back as an EINVAL "Method call error" (api/base/server/ws_handler/rpc.py
    process_method_call); TS-25.04.0 did not look, TS-26.0.0-BETA.3 checks for a credential."""
    client = client_for(make_host(version=version))
    reply = client.call("auth.mechanism_choices")
    if before_login:
        assert set(reply["result"]) >= {"PASSWORD_PLAIN", "API_KEY_PLAIN"}
    else:
        assert (reply["error"]["code"], reply["error"]["data"]["errname"]) == (-32001, "EINVAL")
        assert "may_create_auth_token" in reply["error"]["data"]["reason"]
    client.login()
    assert set(client.result("auth.mechanism_choices")) >= {"PASSWORD_PLAIN", "API_KEY_PLAIN"}
