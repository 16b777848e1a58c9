"""Job fan-outs across a middlewared restart: a job id means nothing without its boot id.

A restarted host's own jobs take ids 1, 2, ... at once (docs/protocol.md §9), the
very ids the fan-out's jobs had. Those hosts must end `job_unknown`, never `ok`
with a boot-time job's result; the others finish; no job is sent twice.
"""
from __future__ import annotations

import os
import sys

import gevent
import orjson
import pytest
import yaml
from gevent import subprocess

from fleetclt.client.login import Credentials
from fleetclt.client.session import HostSession
from fleetclt.client.throttle import Backoff
from fleetclt.fleet.fleet import Fleet
from fleetclt.fleet.results import Status
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet
from tests.helpers import wait_until

PASSWORD = "restart-pw"
VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")
RESTARTED = ("sim001", "sim002", "sim003", "sim004")  # one of each version


@pytest.fixture
def sim(tmp_path, monkeypatch):
    monkeypatch.setenv("RESTART_PW", PASSWORD)
    fleet = SimFleet.create(6, base_address="127.13.0.1", users={"admin": PASSWORD}, versions=VERSIONS,
                            clock=SimClock(speed=100), faults=Faults(job_duration=20))
    with fleet:
        fleet.inventory_path = tmp_path / "inventory.yaml"
        fleet.inventory_path.write_text(yaml.safe_dump(fleet.inventory({"env": "RESTART_PW"})))
        for host in fleet.hosts:
            host.hold_jobs(True)  # every job runs until the restarts are done
        yield fleet


def client_job_running(host):
    return any(j.credentials is not None and j.state == "RUNNING" for j in host.engine.jobs.values())


def restart_some_once_all_run(sim, downtime=0.0):
    wait_until(lambda: all(client_job_running(h) for h in sim.hosts), timeout=30)
    for name in RESTARTED:
        sim[name].restart(downtime)
    for host in sim.hosts:
        host.hold_jobs(False)


def check_outcome(sim, statuses, results):
    assert statuses == {h.name: "job_unknown" if h.name in RESTARTED else "ok" for h in sim.hosts}
    assert all(results[h.name] is True for h in sim.hosts if h.name not in RESTARTED)
    assert [h.counters.jobs_started for h in sim.hosts] == [1] * 6, "no job was sent twice"
    for name in RESTARTED:
        assert sim[name].engine.jobs[1].method == "pool.import_on_boot", "id 1 went to a boot-time job"


def test_a_fleet_job_fan_out_across_restarts(sim):
    with Fleet.from_inventory(parse_inventory(sim.inventory_path.read_text(), "sim.yaml")) as fleet:
        running = gevent.spawn(fleet.call, "pool.dataset.lock", "tank/secure", job=True)
        restart_some_once_all_run(sim)
        result = running.get(timeout=30)
    check_outcome(sim, {name: r.status.value for name, r in result.items()},
                  {name: r.result for name, r in result.items()})
    assert all("restarted" in str(result[name].error) for name in RESTARTED)
    assert result.by_status()[Status.JOB_UNKNOWN] == list(RESTARTED)


def brief_backoff_session(spec):
    """Five reconnect tries span 0.05 + 0.1 + 0.2 + 0.4 s, far less than the restarts' 502s."""
    return HostSession(spec.name, spec.uri, Credentials(spec.username, spec.password, spec.api_key),
                       backoff=Backoff(base=0.05, rand=lambda low, high: high))


def test_a_fleet_job_fan_out_across_restarts_with_downtime(sim):
    """nginx answers 502 for 3 s (300 simulated) while each middleware restarts: the sessions wait
    through it beyond `reconnect_attempts`, find the new boot id, and end job_unknown; calls after it are ok."""
    inventory = parse_inventory(sim.inventory_path.read_text(), "sim.yaml")
    with Fleet.from_inventory(inventory, session_factory=brief_backoff_session) as fleet:
        running = gevent.spawn(fleet.call, "pool.dataset.lock", "tank/secure", job=True)
        restart_some_once_all_run(sim, downtime=300.0)
        result = running.get(timeout=60)
        after = fleet.call("system.info")
    check_outcome(sim, {name: r.status.value for name, r in result.items()},
                  {name: r.result for name, r in result.items()})
    assert all("restarted" in str(result[name].error) for name in RESTARTED)
    assert all(sim[name].counters.bad_gateway > 5 for name in RESTARTED), "the 502s outlasted five tries"
    assert [r.status for r in after.values()] == [Status.OK] * 6


def test_the_cli_job_fan_out_across_restarts_exits_2(sim, tmp_path):
    env = {**os.environ, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "-i", str(sim.inventory_path), "call",
                                "--hosts", "all", "-o", "json", "-j", "pool.dataset.lock", "tank/secure"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    restart_some_once_all_run(sim)
    with gevent.Timeout(60):
        out, err = process.communicate()
    assert process.returncode == 2, err
    hosts = orjson.loads(out)["hosts"]
    check_outcome(sim, {name: row["status"] for name, row in hosts.items()},
                  {name: row.get("result") for name, row in hosts.items()})
    assert "restarted" in hosts["sim001"]["error"]["reason"]
