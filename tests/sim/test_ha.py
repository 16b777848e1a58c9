"""HA pairs: a MASTER and a BACKUP controller, REDIRECT, failover.status, failover on demand.

Modelled on the middleware at TS-25.10.6 (and TS-24.10.2 for the legacy login):
plugins/auth.py `login_ex`, `login`, `login_with_api_key`; plugins/failover.py
`status`, `licensed`, `get_ips`; plugins/failover_/disabled_reasons.py;
plugins/system_general/ui.py `get_ui_urls`; plugins/update_/status.py.
"""
from __future__ import annotations

import pytest

from tests.sim.test_versions import ddp_call, ddp_connect

PASSWORD = "fleetclt-sim"


@pytest.fixture
def pair(make_host):
    def make(version="25.10.1"):
        master = make_host("nas-a", version=version, address="127.12.0.1")
        backup = make_host("nas-b", version=version, address="127.12.0.2")
        master.pair_with(backup)
        return master, backup
    return make


def login_ex(client, password=PASSWORD):
    return client.result("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": "admin",
                                           "password": password})


def test_backup_redirects_to_the_master_before_looking_at_credentials(pair, client_for):
    """auth.py login_ex: BACKUP whose peer answers MASTER -> REDIRECT{urls: failover.get_ips}, which
    are get_ui_urls' http://ADDRESS[:PORT] of the peer; checked before the mechanism runs."""
    master, backup = pair()
    client = client_for(backup)
    expected = {"response_type": "REDIRECT", "urls": [f"http://{master.address}:{master.port}"]}
    assert login_ex(client) == expected
    assert login_ex(client, password="wrong") == expected
    assert backup.counters.logins_failed == 0 and backup.counters.logins_ok == 0
    assert client.call("system.info")["error"]["data"]["error"] == 207  # not logged in


def test_legacy_logins_on_a_backup_return_false(pair, client_for):
    """auth.py (25.04+): auth.login and auth.login_with_api_key wrap login_ex; REDIRECT -> false."""
    _, backup = pair()
    client = client_for(backup)
    assert client.result("auth.login", "admin", PASSWORD) is False


def test_24_10_has_no_redirect(pair, client_for):
    """TS-24.10.2 plugins/auth.py: no login_ex and no HA check in auth.login; the BACKUP logs in."""
    _, backup = pair("24.10.2")
    client = client_for(backup)
    ddp_connect(client)
    assert ddp_call(client, "auth.login", "admin", PASSWORD)["result"] is True
    assert ddp_call(client, "failover.status", msg_id="s")["result"] == "BACKUP"


def test_failover_status_and_license(pair, make_host, client_for):
    """failover.py status: MASTER, BACKUP ... SINGLE; licensed: true on an HA unit."""
    master, _ = pair()
    client = client_for(master)
    login_ex(client)
    assert client.result("failover.status") == "MASTER" and client.result("failover.licensed") is True
    assert client.result("failover.disabled.reasons") == []
    single = client_for(make_host("nas-c", address="127.12.0.3"))
    single.login()
    assert single.result("failover.status") == "SINGLE" and single.result("failover.licensed") is False


def test_fail_over_swaps_the_roles(pair, client_for):
    """failover.py become_passive: the active node reboots itself ("STCNITH") so the BACKUP takes
    over; the rebooted node comes back as BACKUP and its connections drop."""
    master, backup = pair()
    old = client_for(master)
    login_ex(old)
    boot_id = master.boot_id
    master.fail_over()
    assert (master.failover_role, backup.failover_role) == ("BACKUP", "MASTER")
    assert master.boot_id != boot_id
    old.wait_closed()
    assert login_ex(client_for(backup))["response_type"] == "SUCCESS"
    assert login_ex(client_for(master))["urls"] == [f"http://{backup.address}:{backup.port}"]


def test_a_backup_whose_master_is_gone_lets_the_login_through_and_updates_say_210(pair, client_for):
    """auth.py login_ex: a peer that does not answer as MASTER falls through to the normal login.
    update_/status.py: failover.disabled.reasons non-empty -> EHAUNAVAILABLE (210) before an update."""
    master, backup = pair()
    master.go_offline()
    client = client_for(backup)
    assert login_ex(client)["response_type"] == "SUCCESS"
    assert client.result("failover.disabled.reasons") == ["NO_PONG"]
    client.result("core.set_options", {"legacy_jobs": False})
    error = client.call("update.run", {})["error"]["data"]
    assert (error["error"], error["errname"]) == (210, "EHAUNAVAILABLE")
