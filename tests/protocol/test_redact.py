"""Credentials are masked in logged frames."""
from __future__ import annotations

import orjson
import pytest

from fleetclt.protocol.redact import CONTEXT_FIELDS, CREDENTIAL_FIELDS, IDENTITY_FIELDS, MASK, redact, redact_frame
from fleetclt.protocol.secret_fields import SECRET_FIELDS


def test_login_ex_secrets_are_masked():
    frame = '{"jsonrpc":"2.0","id":"a1","method":"auth.login_ex","params":[{"mechanism":"PASSWORD_PLAIN",' \
            '"username":"admin","password":"hunter2"}]}'
    logged = redact_frame(frame)
    assert "hunter2" not in logged
    assert orjson.loads(logged)["params"][0] == {"mechanism": "PASSWORD_PLAIN", "username": "admin",
                                                 "password": MASK}


def test_positional_login_arguments_are_masked():
    for method, params in (("auth.login", ["admin", "hunter2"]), ("auth.login_with_api_key", ["1-abcdef"])):
        frame = orjson.dumps({"msg": "method", "id": "x", "method": method, "params": params}).decode()
        logged = redact_frame(frame)
        assert "hunter2" not in logged and "1-abcdef" not in logged and MASK in logged


def test_nested_secrets_in_other_calls_are_masked():
    frame = orjson.dumps({"jsonrpc": "2.0", "id": 3, "method": "user.create",
                          "params": [{"username": "bob", "password": "pw-of-bob"}]}).decode()
    assert "pw-of-bob" not in redact_frame(frame) and "bob" in redact_frame(frame)


def test_non_json_is_described_not_echoed():
    assert redact_frame("password=hunter2 garbage") == "<24 characters, not JSON>"


# --- every field TrueNAS declares secret (fleetclt/protocol/secret_fields.py) ----------------


def masked_in(message: dict, name: str, value: str) -> bool:
    logged = redact_frame(orjson.dumps(message))
    return value not in logged and name in logged


@pytest.mark.parametrize("name", sorted(CREDENTIAL_FIELDS))
def test_a_credential_field_is_masked_wherever_it_is(name):
    """Fields typed Secret[...] in middlewared/api/v25_04_*/ and v25_10_*/ (or private=True in
    the 25.04 plugin schemas) and never declared plain: masked at any depth, any case."""
    value = f"leak-{name}"
    deep = {"jsonrpc": "2.0", "id": 1, "method": "x.update", "params": [7, {"list": [{name.upper(): value}]}]}
    assert masked_in(deep, name.upper(), value)


@pytest.mark.parametrize("name", sorted(CONTEXT_FIELDS))
def test_a_context_field_is_masked_inside_a_credential_record_only(name):
    """Secret in some middleware models (cloud_sync_providers.py: SFTP `host`, `port`, S3
    `endpoint`, `region`) and plain in others (a call's `result`): masked beside a credential."""
    value = f"leak-{name}"
    record = {"jsonrpc": "2.0", "id": 1, "method": "cloudsync.credentials.create",
              "params": [{"provider": {"type": "S3", "secret_access_key": "s3-secret", name: value}}]}
    assert masked_in(record, name, value)
    plain = {"jsonrpc": "2.0", "id": 1, "result": {name: value}}
    assert value in redact_frame(orjson.dumps(plain))


def test_every_collected_field_is_masked_or_deliberately_shown():
    assert {name.lower() for name in SECRET_FIELDS} == CREDENTIAL_FIELDS | CONTEXT_FIELDS | IDENTITY_FIELDS
    assert len(SECRET_FIELDS) > 60, "collected from the middleware's models, not a short list"
    login = {"params": [{"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "pw"}]}
    assert redact(login)["params"][0]["username"] == "admin", "who logs in is what a debug log is for"


@pytest.mark.parametrize("name", ["privatekey", "secret_access_key", "bindpw", "peersecret", "private_key",
                                  "ldap_user_dn_password", "encryption_password", "dhchap_key"])
def test_the_fields_the_short_list_missed_are_masked(name):
    """The issue's reproduction: certificate, cloud credential, LDAP, iSCSI CHAP, SSH keychain."""
    assert redact({"params": [{name: "-----BEGIN PRIVATE KEY-----"}]}) == {"params": [{name: MASK}]}


@pytest.mark.parametrize("name", ["ansible_password", "ansible_ssh_pass", "reconnect_token", "v4_passphrase",
                                  "my_api_key", "app_secret", "smtp_password"])
def test_names_no_model_lists_are_masked_by_their_shape(name):
    assert redact({name: "x"}) == {name: MASK}


def test_harmless_values_stay_readable():
    """keychain.py declares `private_key: Secret[int]` for a keychain id and cloud_sync_providers.py
    `port: Secret[int]`: ids, ports and flags are never credentials, so they stay visible."""
    shown = {"public_key": "ssh-ed25519 AAAA", "remote_host_key": "ssh-rsa AAAA", "key_id": 3,
             "private_key": 12, "password_disabled": True, "sort_key": "name", "passthrough": "x",
             "password": None}
    assert redact(shown) == shown
    assert redact({"key": "0123abcd"}) == {"key": MASK}
