"""`fleetclt call/ping/hosts --hosts` in a subprocess against a simulated fleet of real hosts."""
from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

import orjson
import pytest
import yaml
from gevent import subprocess

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet

PASSWORD = "cli-fleet-pw"


@dataclass
class Run:
    code: int
    out: str
    err: str


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    fleet = SimFleet.create(60, base_address="127.7.0.1", users={"admin": PASSWORD},
                            clock=SimClock(speed=1000), faults=Faults(job_duration=100))
    with fleet:
        path = tmp_path_factory.mktemp("inv") / "inventory.yaml"
        path.write_text(yaml.safe_dump(fleet.inventory({"env": "CLI_PW"})))
        fleet.inventory_path = path
        yield fleet


@pytest.fixture
def cli(sim, tmp_path):
    env = {**os.environ, "CLI_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(tmp_path / "state")}

    def run(*args: str) -> Run:
        result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(sim.inventory_path), *args],
                                capture_output=True, text=True, env=env, timeout=120)
        return Run(result.returncode, result.stdout, result.stderr)
    return run


@pytest.fixture
def broken(sim):
    """sim003 is offline and sim004 refuses logins, for the length of one test."""
    config = sim["sim004"].config
    sim["sim003"].go_offline()
    sim["sim004"].config = dataclasses.replace(config, users={"admin": "changed"})
    yield
    sim["sim003"].go_online()
    sim["sim004"].config = config


def test_json_document_matches_the_contract(cli, sim):
    run = cli("call", "--hosts", "all", "-o", "json", "system.info")
    assert run.code == 0 and run.err == ""
    doc = orjson.loads(run.out)
    assert set(doc) == {"hosts", "summary"} and doc["summary"] == {"ok": 60}
    assert list(doc["hosts"]) == [h.name for h in sim.hosts], "inventory order"
    assert doc["hosts"]["sim007"]["status"] == "ok"
    assert doc["hosts"]["sim007"]["result"]["hostname"] == "sim007"
    assert doc["hosts"]["sim007"]["result"]["datetime"].endswith("+00:00")


def test_failures_exit_2_with_errors_in_the_contract_shape(cli, broken):
    run = cli("call", "--hosts", "rack01", "-o", "json", "core.ping")
    assert run.code == 2
    doc = orjson.loads(run.out)
    assert doc["summary"] == {"ok": 18, "unreachable": 1, "auth_failed": 1}
    error = doc["hosts"]["sim004"]["error"]
    assert set(error) >= {"errno", "errname", "reason", "extra"} and "refused" in error["reason"]
    assert doc["hosts"]["sim003"]["status"] == "unreachable"


def test_jsonl_streams_one_parsable_object_per_host(cli):
    run = cli("call", "--hosts", "rack02", "-o", "jsonl", "-j", "service.control", "RESTART", "nfs")
    assert run.code == 0
    rows = [orjson.loads(line) for line in run.out.splitlines()]
    assert len(rows) == 20 and {r["host"] for r in rows} == {f"sim{i:03d}" for i in range(21, 41)}
    assert all(r["status"] == "ok" and r["result"] is True for r in rows)


def test_validation_errors_keep_their_triples(cli):
    doc = orjson.loads(cli("call", "--hosts", "sim001", "-o", "json", "user.get_instance", "99").out)
    error = doc["hosts"]["sim001"]["error"]
    assert error["errname"] == "EINVAL" and error["extra"] == [[None, "User 99 does not exist", 2]]


def test_failed_hosts_are_remembered_for_at_failed(cli, sim, broken):
    assert cli("call", "--hosts", "rack01", "-o", "json", "core.ping").code == 2
    retry = cli("hosts", "--hosts", "@failed", "-o", "json")
    assert list(orjson.loads(retry.out)["hosts"]) == ["sim003", "sim004"]


def test_hosts_lists_without_connecting(cli, sim):
    before = sum(h.counters.connections for h in sim.hosts)
    run = cli("hosts", "--hosts", "rack03,&~sim04[0-9]", "-o", "json")
    hosts = orjson.loads(run.out)["hosts"]
    assert list(hosts) == [f"sim0{i}" for i in range(41, 50)]
    assert PASSWORD not in run.out and "env:CLI_PW" in run.out
    assert sum(h.counters.connections for h in sim.hosts) == before


def test_ping_reports_rtt_version_and_dialect(cli):
    doc = orjson.loads(cli("ping", "--hosts", "canary", "-o", "json").out)
    result = doc["hosts"]["sim001"]["result"]
    assert result["version"] == "25.10.1" and result["api"] == "jsonrpc" and result["rtt_ms"] > 0


def test_nothing_ran_exits_1(cli):
    unknown = cli("call", "--hosts", "nosuch", "core.ping")
    assert unknown.code == 1 and "no host or group named 'nosuch'" in unknown.err
    empty = cli("call", "--hosts", "~nothing.*", "core.ping")
    assert empty.code == 1 and "matches" in empty.err
    usage = cli("call", "--hosts", "all", "--output", "xml", "core.ping")
    assert usage.code == 1


def test_deadline_marks_unfinished_hosts_as_timeout(cli, sim):
    sim["sim060"].set_stall(True)
    try:
        run = cli("call", "--hosts", "rack03", "--deadline", "2", "-o", "json", "core.ping")
    finally:
        sim["sim060"].set_stall(False)
    doc = orjson.loads(run.out)
    assert run.code == 2 and doc["summary"] == {"ok": 19, "timeout": 1}
    assert "deadline" in doc["hosts"]["sim060"]["error"]["reason"]


def test_table_and_yaml_outputs(cli):
    table = cli("call", "--hosts", "sim001,sim002", "-o", "table", "system.version")
    assert table.out.splitlines()[1].split()[:2] == ["sim001", "ok"]
    assert table.out.splitlines()[-1].startswith("recap: 2 ok")
    data = yaml.safe_load(cli("call", "--hosts", "sim001", "-o", "yaml", "system.version").out)
    assert data["hosts"]["sim001"]["result"] == "TrueNAS-25.10.1"
