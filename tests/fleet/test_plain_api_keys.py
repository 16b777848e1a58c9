"""Plain API keys go only where the server will see a secure origin: over ws://, loopback
included, only to hosts that opt in with `allow_plain_api_key: true`, named in one warning.

The simulator's `proxied_from` makes a loopback client look as it would through an SSH port
forward; the server then revokes a plain key as middleware plugins/auth.py (api_key_plain,
'Attempt to use over an insecure transport') does from 25.04 (docs/protocol.md §5).
"""
from __future__ import annotations

import json
import os
import sys

from gevent import subprocess

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim import ManualClock

KEY = "6-" + "p" * 48
FORWARDED = "192.0.2.7"  # where the server thinks the client is: the far end of a port forward


def forwarded_host(make_host, name):
    return make_host(name, api_keys={KEY: "admin"}, proxied_from=FORWARDED, clock=ManualClock(speed=1000))


def test_a_key_over_ws_through_a_port_forward_is_refused_unsent_and_survives(make_host):
    host = forwarded_host(make_host, "fwd01")
    text = f'hosts:\n  fwd01: {{uri: "{host.uri}", username: admin, api_key: "{KEY}"}}\n'
    with Fleet(parse_inventory(text, "inventory.yaml")) as fleet:
        rows = [fleet.call("core.ping")["fwd01"] for _ in range(2)]
    assert [row.status.value for row in rows] == ["auth_failed", "auth_failed"]
    assert "refusing to send the API key over ws://" in str(rows[0].error) and KEY not in str(rows[0].error)
    assert host.counters.connections == 1, "asked whether it offers SCRAM (25.10 does not), once"
    assert host.counters.calls_by_method["auth.login_ex"] == 0
    assert not host.revoked_keys, "nothing was sent, so the key still works"


def test_the_opt_in_is_named_in_one_warning_per_run(make_host, tmp_path):
    """Opted-in hosts get the key over ws:// and are named once; the opt-in is a promise that the
    server sees loopback, and a host reached through a forward shows what breaking it costs."""
    local = make_host("local", api_keys={KEY: "admin"})
    fwd, refused = forwarded_host(make_host, "fwd"), forwarded_host(make_host, "refused")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""\
defaults: {{username: admin, api_key: "{KEY}"}}
groups:
  lab: {{allow_plain_api_key: true}}
hosts:
  local: {{uri: "{local.uri}", groups: [lab]}}
  fwd: {{uri: "{fwd.uri}", groups: [lab]}}
  refused: {{uri: "{refused.uri}"}}
""")
    env = {**os.environ, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}
    run = subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), "call", "--hosts", "all",
                          "-o", "json", "core.ping"], capture_output=True, text=True, env=env, timeout=120)
    rows = json.loads(run.stdout)["hosts"]
    assert {name: row["status"] for name, row in rows.items()} == {
        "local": "ok", "fwd": "auth_failed", "refused": "auth_failed"}
    warnings = [line for line in run.stderr.splitlines() if "unencrypted over ws://" in line]
    assert warnings == [
        "fleetclt: warning: the API key goes unencrypted over ws:// (allow_plain_api_key: true) to 2 hosts "
        "local, fwd unless the host offers SCRAM (TrueNAS 26.0 and later), which never sends it: the server "
        "revokes it for good unless it sees a loopback client; an SSH port forward, a "
        "container port mapping or a TLS-terminating proxy without X-Https in front of them does not count"]
    assert "expired or revoked" in rows["fwd"]["error"]["reason"] and KEY in fwd.revoked_keys
    assert refused.counters.calls_by_method["auth.login_ex"] == 0 and not refused.revoked_keys
    assert KEY not in run.stdout + run.stderr
