"""Secrets never leak: CLI and API at debug level, every credential kind, every file written."""
from __future__ import annotations

import itertools
import json
import logging
import os
import sys
from pathlib import Path

import pytest
from gevent import subprocess

from fleetclt.errors import AuthError
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.protocol.redact import IDENTITY_FIELDS, MASK
from fleetclt.protocol.secret_fields import SECRET_FIELDS
from fleetclt.sim.auth_tokens import TokenStore
from tests.helpers import record_tokens, wait_until

PASSWORD, API_KEY = "pw-Zq81-never-leak", "9-key-Xr55-never-leak"
SECRETS = (PASSWORD, API_KEY, API_KEY.split("-", 1)[1])


@pytest.fixture
def tokens_made(monkeypatch):
    """Every session token the simulator makes (it runs in this process, the CLI's too)."""
    return record_tokens(monkeypatch)


@pytest.fixture
def nas(make_host):
    return make_host(users={"admin": PASSWORD}, api_keys={API_KEY: "admin"})


@pytest.fixture
def files(tmp_path, nas):
    key_file = tmp_path / "nas.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""
hosts:
  by-env: {{uri: "{nas.uri}", username: admin, password: {{env: HYGIENE_PW}}}}
  by-file: {{uri: "{nas.uri}", username: admin, api_key: {{file: {key_file}}}, allow_plain_api_key: true}}
""")
    return {"key": key_file, "inventory": inventory, "state": tmp_path / "state", "runs": itertools.count()}


def run_cli(files, *args, stdin=None):
    """Each run with a state dir of its own under files["state"]: all of them log in to one
    server, and a shared auth budget (a burst of 5) made the last runs wait ~17 s for it."""
    state = files["state"] / str(next(files["runs"]))
    env = {**os.environ, "HYGIENE_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(state)}
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "--debug", *args], input=stdin,
                            capture_output=True, text=True, env=env, timeout=120)
    return result.stdout + result.stderr


def test_cli_at_debug_level_never_writes_a_secret(files, nas, tokens_made):
    outputs = [
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
    assert all(secret not in text for secret in SECRETS + tuple(tokens_made) for text in outputs + written)
    assert MASK in outputs[0] and "auth.login_ex" in outputs[0], "frames were logged, masked"
    assert tokens_made and "auth.generate_token" in outputs[0], "session tokens were made, their frames logged"


def test_api_at_debug_level_never_logs_or_raises_a_secret(files, nas, monkeypatch, caplog):
    monkeypatch.setenv("HYGIENE_PW", PASSWORD)
    caplog.set_level(logging.DEBUG)
    inventory = parse_inventory(files["inventory"].read_text(), str(files["inventory"]))
    with Fleet(inventory) as fleet:
        result = fleet.call("auth.me")
        texts = [repr(fleet), repr(fleet["by-env"]), repr(inventory.hosts["by-file"]),
                 str(inventory.hosts["by-env"].to_dict())]
    monkeypatch.setenv("HYGIENE_PW", "wrong-" + PASSWORD)
    with Fleet(inventory) as fleet, pytest.raises(AuthError) as refused:
        fleet.call("core.ping", hosts="by-env").raise_on_error()
    texts += [str(refused.value), repr(refused.value), caplog.text, repr(result),
              str([r.to_dict() for r in result.values()])]
    assert not result.failed and MASK in caplog.text
    assert all(secret not in text for secret in SECRETS for text in texts)


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
