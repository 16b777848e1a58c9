"""Credentials are masked in logged frames."""
from __future__ import annotations

import orjson

from fleetclt.protocol.redact import MASK, redact_frame


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
