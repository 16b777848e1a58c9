"""Secrets never leak: CLI and API at debug level, every credential kind, every file written.

The two-factor host runs on a real-time clock: the client computes its codes from the wall clock.
Its TOTP secret and every code of the test's time steps must not appear, nor auth.me's
provisioning_uri (an otpauth:// URI carrying the secret: plugins/account_/2fa.py)."""
from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
from gevent import subprocess

from fleetclt.errors import AuthError
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.protocol.otp import code_at
from fleetclt.protocol.redact import IDENTITY_FIELDS, MASK
from fleetclt.protocol.secret_fields import SECRET_FIELDS
from fleetclt.sim import SimClock
from fleetclt.sim.auth_tokens import TokenStore
from tests.helpers import record_tokens, wait_until

PASSWORD, API_KEY = "pw-Zq81-never-leak", "9-key-Xr55-never-leak"
OTP_SECRET = "GEZDGNBVGY3DQOJQMFRGGZDFMZTWQ2LK"
WRONG_OTP_SECRET = "A" + OTP_SECRET[1:]
SECRETS = (PASSWORD, API_KEY, API_KEY.split("-", 1)[1], OTP_SECRET, OTP_SECRET.lower(), "otpauth://")


def two_factor_codes(since: float) -> list[str]:
    """Every code of the steps from `since` to now, as a JSON string (a bare 6-digit run could be anything)."""
    return [f'"{code_at(OTP_SECRET, at)}"' for at in range(int(since) - 30, int(time.time()) + 31, 30)]


@pytest.fixture
def tokens_made(monkeypatch):
    """Every session token the simulator makes (it runs in this process, the CLI's too)."""
    return record_tokens(monkeypatch)


@pytest.fixture
def nas(make_host):
    return make_host(users={"admin": PASSWORD}, api_keys={API_KEY: "admin"})


@pytest.fixture
def otp_nas(make_host):
    return make_host("otp01", clock=SimClock(speed=1), users={"admin": PASSWORD}, otp_secrets={"admin": OTP_SECRET})


@pytest.fixture
def files(tmp_path, nas, otp_nas):
    key_file = tmp_path / "nas.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""
hosts:
  by-env: {{uri: "{nas.uri}", username: admin, password: {{env: HYGIENE_PW}}}}
  by-file: {{uri: "{nas.uri}", username: admin, api_key: {{file: {key_file}}}, allow_plain_api_key: true}}
  by-otp: {{uri: "{otp_nas.uri}", username: admin, password: {{env: HYGIENE_PW}}, otp_secret: {{env: HYGIENE_OTP}}}}
""")
    return {"key": key_file, "inventory": inventory, "state": tmp_path / "state", "runs": itertools.count()}


def run_cli(files, *args, stdin=None):
    """Each run with a state dir of its own under files["state"]: all of them log in to one
    server, and a shared auth budget (a burst of 5) made the last runs wait ~17 s for it."""
    state = files["state"] / str(next(files["runs"]))
    env = {**os.environ, "HYGIENE_PW": PASSWORD, "HYGIENE_OTP": OTP_SECRET, "FLEETCLT_STATE_DIR": str(state)}
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "--debug", *args], input=stdin,
                            capture_output=True, text=True, env=env, timeout=120)
    return result.stdout + result.stderr


def test_cli_at_debug_level_never_writes_a_secret(files, nas, otp_nas, tokens_made):
    start = time.time()
    outputs = [
        run_cli(files, "--uri", otp_nas.uri, "-U", "admin", "--password-env", "HYGIENE_PW", "--otp-secret-env",
                "HYGIENE_OTP", "call", "auth.me"),
        run_cli(files, "--uri", nas.uri, "-U", "admin", "--password-env", "HYGIENE_PW", "call", "system.info"),
        run_cli(files, "--uri", nas.uri, "-U", "admin", "-K", str(files["key"]), "--allow-plain-api-key", "call",
                "auth.me"),
        run_cli(files, "--uri", nas.uri, "-U", "admin", "-P", "-", "ping", stdin=PASSWORD + "\n"),
        run_cli(files, "--uri", nas.uri, "-U", "admin", "-P", "-", "ping", stdin="wrong-" + PASSWORD + "\n"),
        run_cli(files, "-i", str(files["inventory"]), "call", "--hosts", "all", "-o", "json", "core.ping"),
        run_cli(files, "-i", str(files["inventory"]), "rollout", "--hosts", "all", "service.control", "RESTART", "nfs"),
    ]
    written = [p.read_text(errors="replace") for p in Path(files["state"]).rglob("*") if p.is_file()]
    assert any("rollouts" in str(p) for p in Path(files["state"]).rglob("*.jsonl")), "a journal was written"
    leaks = SECRETS + tuple(two_factor_codes(start)) + tuple(tokens_made)
    assert all(secret not in text for secret in leaks for text in outputs + written)
    assert MASK in outputs[1] and "auth.login_ex" in outputs[1], "frames were logged, masked"
    assert "auth.login_ex_continue" in outputs[0] and '"provisioning_uri": "********"' in outputs[0]
    assert otp_nas.counters.logins_two_factor == 3, "one single-host, fleet and rollout login each"
    assert not any("auth.generate_token" in text for text in outputs), \
        "a one-shot command asks for no session token (each is audited); tokens: the next test"


def test_api_at_debug_level_never_logs_or_raises_a_secret(files, nas, otp_nas, monkeypatch, caplog):
    monkeypatch.setenv("HYGIENE_PW", PASSWORD)
    monkeypatch.setenv("HYGIENE_OTP", OTP_SECRET)
    caplog.set_level(logging.DEBUG)
    start = time.time()
    inventory = parse_inventory(files["inventory"].read_text(), str(files["inventory"]))
    with Fleet(inventory) as fleet:
        assert fleet.call("core.ping", hosts="by-otp")["by-otp"].ok
        texts = [repr(inventory.hosts["by-otp"]), str(inventory.hosts["by-otp"].to_dict())]
        result = fleet.call("auth.me", hosts="all:!by-otp")
        texts += [repr(fleet), repr(fleet["by-env"]), repr(inventory.hosts["by-file"]),
                  str(inventory.hosts["by-env"].to_dict())]
    monkeypatch.setenv("HYGIENE_PW", "wrong-" + PASSWORD)
    with Fleet(inventory) as fleet, pytest.raises(AuthError) as refused:
        fleet.call("core.ping", hosts="by-env").raise_on_error()
    texts += [str(refused.value), repr(refused.value), caplog.text, repr(result),
              str([r.to_dict() for r in result.values()])]
    monkeypatch.setenv("HYGIENE_PW", PASSWORD)
    monkeypatch.setenv("HYGIENE_OTP", WRONG_OTP_SECRET)
    with Fleet(inventory) as fleet, pytest.raises(AuthError) as wrong_code:
        fleet.call("core.ping", hosts="by-otp").raise_on_error()
    texts += [str(wrong_code.value), repr(wrong_code.value), caplog.text]
    assert not result.failed and MASK in caplog.text and "login_ex_continue" in caplog.text
    assert "the two-factor code computed from otp_secret was refused" in str(wrong_code.value)
    assert all(secret not in text for secret in SECRETS + (WRONG_OTP_SECRET, *two_factor_codes(start))
               for text in texts)


def test_scram_login_at_debug_level_shows_no_key_derived_key_or_proof(files, make_host, tmp_path, caplog):
    """A 26.0 host and a precomputed key file: the client-final message's proof is masked in the
    logged frame, and neither the key, its derived keys nor the file's text appear anywhere
    (plugins/auth_/login_ex_impl.py `login_ex_scram`, plugins/api_key.py `convert_raw_key`)."""
    import base64

    from fleetclt.protocol.scram import derive_keys
    from fleetclt.sim.auth_scram import key_salt
    nas26 = make_host(name="nas26", version="26.0.0-BETA.3", api_keys={API_KEY: "admin"}, scram_iterations=4096,
                      proxied_from="192.0.2.7")
    key_id, secret = API_KEY.split("-", 1)
    keys = derive_keys(secret, key_salt("nas26", key_id), 4096)
    derived = [base64.b64encode(getattr(keys, name)).decode() for name in ("client_key", "stored_key", "server_key")]
    precomputed = tmp_path / "nas26.json"
    precomputed.write_text(json.dumps({"client_key": derived[0], "stored_key": derived[1], "server_key": derived[2],
                                       "api_key_id": int(key_id), "username": "admin"}))
    precomputed.chmod(0o600)
    outputs = [run_cli(files, "--uri", nas26.uri, "-U", "admin", "-K", str(files["key"]), "call", "auth.me"),
               run_cli(files, "--uri", nas26.uri, "-K", str(precomputed), "call", "auth.me"),
               run_cli(files, "--uri", nas26.uri, "-U", "admin", "-K", str(files["key"]), "--allow-plain-api-key",
                       "ping")]
    assert nas26.counters.logins_scram == 3 and not nas26.revoked_keys
    assert all(output.count("CLIENT_FINAL_MESSAGE") == output.count(f",p={MASK}") == 1 for output in outputs)
    assert all(leaked not in output for leaked in (*SECRETS, *derived) for output in outputs)


@pytest.mark.parametrize("version", ["24.10.2", "25.10.1"])
def test_a_session_token_never_reaches_logs_errors_or_reprs(make_host, session_for, tokens_made, caplog, version):
    """The token's reply, its TOKEN_PLAIN (or 24.10's login_with_token) login, and a refused one."""
    caplog.set_level(logging.DEBUG)
    nas = make_host(version=version, users={"admin": PASSWORD})
    session = session_for(nas, password=PASSWORD)
    session.connect()
    for made in (1, 2):
        wait_until(lambda: session.stats.tokens == made)  # noqa: B023 (waited for at once)
        nas.drop_connections()
        assert session.call("core.ping", retry_safe=True) == "pong"
    wait_until(lambda: session.stats.tokens == 3)
    nas.tokens = TokenStore(nas.clock)  # the held token dies: refused, then the password
    nas.drop_connections()
    assert session.call("core.ping", retry_safe=True) == "pong"
    wait_until(lambda: session.stats.tokens == 4)
    assert session.stats.token_logins == 2 and session.stats.primary_logins == 2
    login = "auth.login_with_token" if version == "24.10.2" else '"TOKEN_PLAIN"'
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("fleetclt.sim"))
    assert login in logged and MASK in logged, "the token logins' frames were logged, masked"
    texts = [logged, repr(session), repr(session.stats), repr(session._tokens)]
    assert len(tokens_made) == 4 and all(token not in text for token in tokens_made for text in texts)


# --- every secret field of the middleware's models (fleetclt/protocol/secret_fields.py) -------


def leak(name: str) -> str:
    return f"leak-{name}-value"


@pytest.fixture(scope="module")
def every_field_output(tmp_path_factory):
    """`--debug call` with every collected field in its arguments (the request frame is logged;
    the simulator's error answer goes through the error path), and `hosts -o json` with every
    one of them in a host's vars, at the top and nested."""
    from fleetclt.sim import HostConfig, SimClock, SimHost
    tmp = tmp_path_factory.mktemp("fields")
    nas = SimHost(HostConfig("nas01", users={"admin": PASSWORD}), clock=SimClock(speed=100)).start()
    try:
        record = {"password": leak("password"), **{name: leak(name) for name in SECRET_FIELDS}}
        inventory = tmp / "inventory.yaml"
        inventory.write_text(json.dumps({"hosts": {"nas01": {
            "uri": nas.uri, "username": "admin", "password": {"env": "HYGIENE_PW"},
            "vars": {**record, "nested": {"list": [record]}}}}}))
        files = {"state": tmp / "state", "runs": itertools.count()}
        return (run_cli(files, "-i", str(inventory), "call", "--hosts", "all", "-o", "json", "user.update", "1",
                        json.dumps(record))
                + run_cli(files, "-i", str(inventory), "hosts", "-o", "json"))
    finally:
        nas.stop()


@pytest.mark.parametrize("name", sorted(set(SECRET_FIELDS) - IDENTITY_FIELDS))
def test_every_secret_field_of_the_middleware_is_masked_in_logs_errors_and_hosts_json(every_field_output, name):
    assert name in every_field_output and leak(name) not in every_field_output


def test_the_secret_field_run_really_logged_frames_and_printed_hosts(every_field_output):
    assert '"method":"user.update"' in every_field_output.replace(" ", "")
    assert '"nested"' in every_field_output and MASK in every_field_output
    assert all(leak(name) in every_field_output for name in IDENTITY_FIELDS), "who logs in stays readable"
