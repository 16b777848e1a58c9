"""Real-host correctness across versions and HA pairs, over simulated hosts on loopback.

HA standby controllers are routing, not refused credentials; update.update is
sent as update.run from 25.10; errno 209 and 210 get statuses of their own;
an API version can be pinned.
"""
from __future__ import annotations

import os
import sys

import orjson
import pytest
import yaml
from gevent import subprocess

from fleetclt.errors import HandshakeError, RemoteCallError, StandbyError
from fleetclt.fleet.fleet import Fleet
from fleetclt.fleet.results import Status
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim import SimHost
from tests.helpers import wait_until

PASSWORD = "fleetclt-sim"
VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0")


@pytest.fixture
def fleet_of(monkeypatch):
    monkeypatch.setenv("HA_TEST_PW", PASSWORD)
    fleets: list[Fleet] = []

    def make(hosts: list[SimHost], **settings: object) -> Fleet:
        inventory = {"defaults": {"username": "admin", "password": {"env": "HA_TEST_PW"}, **settings},
                     "hosts": {host.name: {"uri": host.uri} for host in hosts}}
        fleet = Fleet(parse_inventory(yaml.safe_dump(inventory), "ha.yaml"))
        fleets.append(fleet)
        return fleet

    yield make
    for fleet in fleets:
        fleet.close()


@pytest.fixture
def pair(make_host):
    master = make_host("nas-a", address="127.13.0.1")
    backup = make_host("nas-b", address="127.13.0.2")
    master.pair_with(backup)
    return master, backup


# -- HA standby ------------------------------------------------------------------------------
def test_a_standby_controller_is_reported_standby_naming_the_active_one(pair, fleet_of):
    master, backup = pair
    result = fleet_of([master, backup]).call("system.info")
    assert result["nas-a"].ok and result["nas-a"].result["hostname"] == "nas-a"
    standby = result["nas-b"]
    assert standby.status is Status.STANDBY
    assert isinstance(standby.error, StandbyError)
    assert standby.error.urls == [f"http://{master.address}:{master.port}"]
    assert f"http://{master.address}:{master.port}" in str(standby.error)


def test_after_a_failover_the_same_fleet_reaches_the_new_active_controller(pair, fleet_of):
    master, backup = pair
    fleet = fleet_of([master, backup])
    assert fleet.call("core.ping").by_status() == {Status.OK: ["nas-a"], Status.STANDBY: ["nas-b"]}
    master.fail_over()
    wait_until(lambda: not fleet["nas-a"].connected)  # a call already on the wire would be lost
    after = fleet.call("system.info")
    assert after["nas-b"].ok and after["nas-b"].result["hostname"] == "nas-b"
    assert after["nas-a"].status is Status.STANDBY  # rebooted, and now the standby
    assert after["nas-a"].error.urls == [f"http://{backup.address}:{backup.port}"]
    assert backup.counters.logins_ok == 1


def test_a_standby_session_logs_in_once_it_is_active(pair, session_for):
    master, backup = pair
    session = session_for(backup)
    with pytest.raises(StandbyError):
        session.call("core.ping")
    with pytest.raises(StandbyError):
        session.call("core.ping")
    assert backup.counters.connections == 2, "REDIRECT is not remembered as a refusal"
    master.fail_over()
    assert session.call("failover.status") == "MASTER"


# -- errno 209 and 210 -----------------------------------------------------------------------
def test_reboot_required_and_ha_unavailable_have_statuses_of_their_own(pair, fleet_of):
    master, backup = pair
    fleet = fleet_of([master, backup])
    assert fleet.call("update.update", {}, job=True, hosts="nas-a")["nas-a"].ok
    again = fleet.call("update.update", {}, job=True, hosts="nas-a")["nas-a"]
    assert again.status is Status.REBOOT_REQUIRED and again.error.errno == 209
    master.go_offline()  # the pair is degraded: the standby lets logins through
    degraded = fleet.call("update.update", {}, job=True, hosts="nas-b")["nas-b"]
    assert degraded.status is Status.HA_UNAVAILABLE
    assert degraded.to_dict()["error"]["errno"] == 210


# -- method names by version -------------------------------------------------------------------
@pytest.fixture
def mixed(make_host):
    return [make_host(f"v{version.replace('.', '-')}", version=version, address=f"127.13.1.{index + 1}")
            for index, version in enumerate(VERSIONS)]


def job_methods(hosts):
    return {host.config.version: [job.method for job in host.engine.jobs.values()] for host in hosts}


def test_the_update_job_runs_under_each_versions_name(mixed, fleet_of):
    result = fleet_of(mixed).call("update.update", {}, job=True)
    assert [r.status for r in result.values()] == [Status.OK] * 4, result
    assert job_methods(mixed) == {"24.10.2": ["update.update"], "25.04.2": ["update.update"],
                                  "25.10.1": ["update.run"], "26.0.0": ["update.run"]}


def test_plain_calls_are_translated_on_the_pipelined_path_too(mixed, fleet_of):
    fleet = fleet_of(mixed)
    assert not fleet.call("core.ping").failed  # connected: plain calls now go out pipelined
    first = fleet.call("update.run", {})  # the version is asked first, on the one-greenlet path
    second = fleet.call("update.run", {})  # now known: sent pipelined, translated there
    assert [r.result for r in first.values()] == [1] * 4 and [r.result for r in second.values()] == [2] * 4
    assert job_methods(mixed) == {"24.10.2": ["update.update"] * 2, "25.04.2": ["update.update"] * 2,
                                  "25.10.1": ["update.run"] * 2, "26.0.0": ["update.run"] * 2}


def test_the_update_configuration_keeps_its_name(make_host, session_for):
    host = make_host(version="25.10.1")
    session = session_for(host)
    assert session.call("update.update", {"autocheck": False})["autocheck"] is False
    assert not host.engine.jobs
    assert session.host_version() == (25, 10, 1)


# -- pinned API versions -------------------------------------------------------------------------
def test_an_api_version_can_be_pinned_per_group(make_host, fleet_of):
    host = make_host(version="25.10.1", address="127.13.2.1")
    fleet = fleet_of([host], api_version="v25.04.2")
    assert fleet.inventory.hosts[host.name].uri.endswith("/api/v25.04.2")
    assert fleet.call("system.info")[host.name].result["version"] == "25.10.1"
    assert [conn.api_version for conn in host.connections] == [(25, 4, 2)]


def test_a_pinned_endpoint_has_no_update_job_on_a_newer_host(make_host, session_for):
    host = make_host(version="25.10.1")
    session = session_for(host, uri=f"ws://{host.address}:{host.port}/api/v25.04.2")
    with pytest.raises(RemoteCallError, match="Method 'run' not found in 'update'") as error:
        session.call("update.update", {}, job=True)
    assert error.value.errno == 201


def test_a_version_newer_than_the_host_is_refused_with_a_hint(make_host, session_for):
    host = make_host(version="25.04.2")
    session = session_for(host, uri=f"ws://{host.address}:{host.port}/api/v25.10.1")
    with pytest.raises(HandshakeError, match="does not serve /api/v25.10.1") as error:
        session.call("core.ping")
    assert error.value.status == 404



def test_every_fan_out_status_is_a_rollout_state():
    """A rollout records a failed host under its fan-out status: each must exist there."""
    from fleetclt.rollout.observer import HostState
    assert {status.value for status in Status} <= {state.value for state in HostState}


# -- the command line on a mixed fleet ------------------------------------------------------------
@pytest.fixture
def cli_on(tmp_path):
    """Run `fleetclt -i INVENTORY ...` in a subprocess against the given hosts."""
    def run(hosts: list[SimHost], *args: str):
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump({
            "defaults": {"username": "admin", "password": {"env": "HA_TEST_PW"}},
            "hosts": {host.name: {"uri": host.uri} for host in hosts}}))
        env = {**os.environ, "HA_TEST_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}
        return subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), *args],
                              capture_output=True, text=True, env=env, timeout=60)
    return run


def test_the_update_command_runs_the_right_method_on_every_version(mixed, cli_on):
    run = cli_on(mixed, "call", "--hosts", "all", "-o", "json", "-j", "update.update", "{}")
    assert run.returncode == 0, run.stderr
    hosts = orjson.loads(run.stdout)["hosts"]
    assert {name: (host["status"], host["result"]) for name, host in hosts.items()} == {
        host.name: ("ok", True) for host in mixed}
    assert job_methods(mixed) == {"24.10.2": ["update.update"], "25.04.2": ["update.update"],
                                  "25.10.1": ["update.run"], "26.0.0": ["update.run"]}


def test_the_readme_examples_work_on_every_version(mixed, cli_on):
    ping = cli_on(mixed, "ping", "--hosts", "all", "-o", "json")
    assert ping.returncode == 0, ping.stderr
    assert {name: host["result"]["version"] for name, host in orjson.loads(ping.stdout)["hosts"].items()} == {
        host.name: host.config.version for host in mixed}
    lock = cli_on(mixed, "call", "--hosts", "all", "-o", "jsonl", "-j", "pool.dataset.lock", "tank/secure")
    assert lock.returncode == 0, lock.stderr
    assert [orjson.loads(line)["result"] for line in lock.stdout.splitlines()] == [True] * 4
    version = cli_on(mixed, "call", "--hosts", "all", "-o", "json", "system.version")
    assert [host["result"] for host in orjson.loads(version.stdout)["hosts"].values()] == [
        "TrueNAS-SCALE-24.10.2", "TrueNAS-25.04.2", "TrueNAS-25.10.1", "TrueNAS-26.0.0"]


# -- an HA pair as one host ------------------------------------------------------------------
def test_an_ha_pair_is_one_host_served_by_its_active_controller(pair, monkeypatch):
    master, backup = pair
    monkeypatch.setenv("HA_TEST_PW", PASSWORD)
    inventory = parse_inventory(yaml.safe_dump({
        "defaults": {"username": "admin", "password": {"env": "HA_TEST_PW"}},
        "hosts": {"nas": {"controllers": [backup.uri, master.uri]}}}), "pair.yaml")
    assert inventory.hosts["nas"].uri == backup.uri
    with Fleet(inventory) as fleet:
        first = fleet.call("system.info")["nas"]
        assert first.ok and first.result["hostname"] == "nas-a"
        master.fail_over()
        wait_until(lambda: not fleet["nas"].connected)
        after = fleet.call("system.info")["nas"]
        assert after.ok and after.result["hostname"] == "nas-b"
    assert master.counters.logins_ok == 1 and backup.counters.logins_ok == 1


def test_a_pair_without_a_reachable_active_controller_reports_the_last_answer(pair, monkeypatch):
    master, backup = pair
    monkeypatch.setenv("HA_TEST_PW", PASSWORD)
    refused = f"ws://{master.address}:1/api/current"  # the active controller, as seen through a broken route
    inventory = parse_inventory(yaml.safe_dump({
        "defaults": {"username": "admin", "password": {"env": "HA_TEST_PW"}},
        "hosts": {"nas": {"controllers": [refused, backup.uri]}}}), "pair.yaml")
    with Fleet(inventory) as fleet:
        result = fleet.call("core.ping")["nas"]
    assert result.status is Status.STANDBY and result.error.urls == [f"http://{master.address}:{master.port}"]
