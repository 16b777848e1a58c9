"""A STIG host (authenticator assurance level 2) refuses API keys with EOPNOTSUPP before it
looks at the key: fleetclt reports `auth_failed` with what would work, and never asks again.

Modelled on plugins/auth.py (check_auth_mechanism) and utils/auth.py (AA_LEVEL2) at TS-25.10.1.
"""
from __future__ import annotations

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim import ManualClock

KEY = "7-" + "s" * 64


def test_an_api_key_on_a_stig_host_is_auth_failed_once_with_the_reason(make_host):
    host = make_host("stig01", version="25.10.1", stig=True, clock=ManualClock(speed=1000),
                     api_keys={KEY: "admin"})
    text = f"""\
hosts:
  stig01: {{uri: "{host.uri}", username: admin, api_key: "{KEY}", allow_plain_api_key: true}}
"""
    with Fleet(parse_inventory(text, "inventory.yaml")) as fleet:
        rows = [fleet.call("core.ping")["stig01"] for _ in range(3)]
    assert [row.status.value for row in rows] == ["auth_failed"] * 3
    assert str(rows[0].error) == (
        "stig01: login refused: the host's authenticator level (STIG) does not accept API key logins; "
        "log in with a password and a two-factor code instead")
    assert host.counters.calls_by_method["auth.login_ex"] == 1
    assert host.counters.connections == 1 and KEY not in str(rows[0].error)
