"""A host that could not log in is refused on its own before connecting, with the reason.

Before: a host with no credential connected and got `[ENOTAUTHENTICATED] Not
authenticated` on its first call; an unset variable or an unreadable key file was
found only after connecting. Now each is found before the session exists, the host
gets `auth_failed` with a reason that says what to fix, and the rest of the fleet runs.
"""
from __future__ import annotations

import json
import os
import sys

from gevent import subprocess

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory

PASSWORD = "pw-Up8-front"


def test_each_unusable_credential_is_refused_per_host_before_connecting(make_host, tmp_path, monkeypatch):
    hosts = {name: make_host(name, users={"admin": PASSWORD}) for name in ("good", "none", "unset", "nofile")}
    monkeypatch.setenv("UP_FRONT_PW", PASSWORD)
    monkeypatch.delenv("UP_FRONT_UNSET", raising=False)
    text = f"""\
defaults: {{username: admin}}
hosts:
  good: {{uri: "{hosts['good'].uri}", password: {{env: UP_FRONT_PW}}}}
  none: {{uri: "{hosts['none'].uri}"}}
  unset: {{uri: "{hosts['unset'].uri}", password: {{env: UP_FRONT_UNSET}}}}
  nofile: {{uri: "{hosts['nofile'].uri}", api_key: {{file: {tmp_path}/missing.key}}}}
"""
    with Fleet(parse_inventory(text, "inventory.yaml")) as fleet:
        result = fleet.call("auth.me")
    reasons = {name: str(row.error) for name, row in result.items() if not row.ok}
    assert result["good"].ok and result["good"].result["pw_name"] == "admin"
    assert {name: row.status.value for name, row in result.items()} == {
        "good": "ok", "none": "auth_failed", "unset": "auth_failed", "nofile": "auth_failed"}
    assert reasons == {
        "none": "none: no credential: set password or api_key in the inventory",
        "unset": "unset: inventory.yaml:5: hosts.unset.password: environment variable UP_FRONT_UNSET is not set",
        "nofile": f"nofile: inventory.yaml:6: hosts.nofile.api_key: cannot read secret file "
                  f"{tmp_path}/missing.key: No such file or directory"}
    assert [hosts[name].counters.connections for name in ("none", "unset", "nofile")] == [0, 0, 0]


def test_cli_reports_a_host_without_credential_and_runs_the_rest(make_host, tmp_path):
    good, bare = make_host("good", users={"admin": PASSWORD}), make_host("bare")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"hosts:\n  good: {{uri: '{good.uri}', username: admin, password: {{env: UP_FRONT_PW}}}}\n"
                         f"  bare: {{uri: '{bare.uri}'}}\n")
    env = {**os.environ, "UP_FRONT_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), "call", "--hosts", "all",
                          "-o", "json", "core.ping"], capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(run.stdout)["hosts"]
    assert run.returncode == 2
    assert rows["good"]["status"] == "ok" and rows["bare"]["status"] == "auth_failed"
    assert rows["bare"]["error"]["reason"] == "no credential: set password or api_key in the inventory"
    assert bare.counters.connections == 0


def test_inventory_key_files_in_midclt_formats(make_host, tmp_path):
    """An `api_key: {file: ...}` is read as midclt reads it (truenas_api_client/auth_api_key.py):
    the INI file's raw_key logs in; precomputed SCRAM material is refused by a host without SCRAM
    (25.10, plugins/auth.py `mechanism_choices`) before any login call."""
    key = "4-" + "i" * 40
    good, scram = make_host("good", api_keys={key: "admin"}), make_host("scram", api_keys={key: "admin"})
    (tmp_path / "good.ini").write_text(f"[TRUENAS_API_KEY]\nraw_key = {key}\napi_key_id = 4\n")
    (tmp_path / "scram.json").write_text('{"client_key": "Y2xp", "stored_key": "c3Rv", "server_key": "c2Vy", '
                                         '"api_key_id": 4}')
    for path in tmp_path.iterdir():
        path.chmod(0o600)
    text = f"""\
defaults: {{username: admin, allow_plain_api_key: true}}
hosts:
  good: {{uri: "{good.uri}", api_key: {{file: good.ini}}}}
  scram: {{uri: "{scram.uri}", api_key: {{file: scram.json}}}}
"""
    with Fleet(parse_inventory(text, str(tmp_path / "inventory.yaml"))) as fleet:
        result = fleet.call("auth.me")
    assert result["good"].ok and result["good"].result["pw_name"] == "admin"
    assert result["scram"].status.value == "auth_failed" and scram.counters.calls_by_method["auth.login_ex"] == 0
    assert str(result["scram"].error) == (
        "scram: the API key file holds precomputed SCRAM material, which logs in only where the host offers "
        "SCRAM (TrueNAS 26.0 and later, not over a Unix socket); give the raw key (raw_key) for this host")
