"""Fleet fan-out over simulated hosts: results per host, bad hosts isolated, deadlines, patterns."""
from __future__ import annotations

import dataclasses
import sys

import gevent
import pytest
import yaml
from gevent import subprocess

from fleetclt.client.session import HostSession
from fleetclt.errors import AuthError
from fleetclt.fleet.fleet import Fleet, session_for
from fleetclt.fleet.results import Status
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim import Faults, ManualClock
from tests.helpers import wait_until
from tests.wsclient import WsClient

PASSWORD = "fleet-pw"


@pytest.fixture
def sim_and_inventory(simulated_fleet):
    return simulated_fleet(40, "127.5.0.1", job_duration=50, password=PASSWORD)


@pytest.fixture
def sim(sim_and_inventory):
    return sim_and_inventory[0]


@pytest.fixture
def fleet(sim_and_inventory):
    with Fleet.from_inventory(sim_and_inventory[1], forks=16, max_connecting=8) as fleet:
        yield fleet


def test_call_on_all_hosts_logs_in_once_per_host(sim, fleet):
    result = fleet.call("system.info")
    assert len(result) == 40 and not result.failed
    assert {name: r.result["hostname"] for name, r in result.items()} == {h.name: h.name for h in sim.hosts}
    again = fleet.call("core.ping", hosts="rack01")
    assert len(again) == 20 and all(r.result == "pong" for r in again.values())
    assert [h.counters.logins_ok for h in sim.hosts] == [1] * 40


def test_bad_hosts_get_their_own_status_and_the_rest_proceeds(sim, fleet):
    assert not fleet.call("core.ping", hosts="sim004").failed  # connected before it stalls
    sim["sim002"].go_offline()
    sim["sim003"].config = dataclasses.replace(sim["sim003"].config, users={"admin": "other"})
    sim["sim004"].set_stall(True)
    result = fleet.call("system.info", timeout=0.5)
    statuses = {name: r.status for name, r in result.items()}
    assert statuses["sim002"] is Status.UNREACHABLE
    assert statuses["sim003"] is Status.AUTH_FAILED
    assert statuses["sim004"] is Status.TIMEOUT
    assert sum(1 for s in statuses.values() if s is Status.OK) == 37
    assert result.by_status()[Status.AUTH_FAILED] == ["sim003"]
    assert result["sim003"].to_dict()["error"]["type"] == "AuthError"
    with pytest.raises(AuthError):
        fleet.call("core.ping", hosts="sim003").raise_on_error()
    sim["sim004"].set_stall(False)


def test_deadline_returns_partial_results(sim, fleet):
    assert not fleet.run(HostSession.connect).failed  # the deadline then only covers the calls
    sim["sim005"].set_stall(True)
    result = fleet.call("core.ping", deadline=1.0)
    assert result["sim005"].status is Status.TIMEOUT and "deadline" in str(result["sim005"].error)
    assert len(result.ok) == 39
    sim["sim005"].set_stall(False)


def test_job_fan_out_with_progress(sim, fleet):
    progress: dict[str, int] = {}
    result = fleet.call("update.update", {}, hosts="rack02", job=True,
                        on_progress=lambda host, job: progress.__setitem__(host, job["progress"]["percent"]))
    assert len(result) == 20 and all(r.result is True for r in result.values())
    assert set(progress) == set(result) and set(progress.values()) == {100}
    assert sum(h.counters.jobs_started for h in sim.hosts) == 20


def test_patterns_select_hosts(fleet):
    assert fleet.select("canary") == ["sim001"]
    assert fleet.select("rack01,!canary")[:2] == ["sim002", "sim003"]
    assert fleet.select("~sim00[1-3]") == ["sim001", "sim002", "sim003"]
    assert fleet.select("@failed", failed=["sim007"]) == ["sim007"]


def test_connects_are_bounded_separately_from_forks(sim_and_inventory):
    inventory = sim_and_inventory[1]
    connecting = []
    peak = [0]

    def counting(spec):
        session = session_for(spec)
        original = session.connect

        def connect(within=None):
            connecting.append(1)
            peak[0] = max(peak[0], len(connecting))
            try:
                gevent.sleep(0.01)
                original(within)
            finally:
                connecting.pop()
        session.connect = connect
        return session
    with Fleet(inventory, forks=40, max_connecting=3, session_factory=counting) as fleet:
        assert not fleet.call("core.ping").failed
    assert peak[0] == 3


def test_subscribe_across_hosts(sim, fleet):
    seen = []
    fleet.subscribe("core.get_jobs", lambda event: seen.append(event.id), hosts="sim001,sim002")
    assert not fleet.call("service.control", "RESTART", "nfs", hosts="sim001,sim002", job=True).failed
    assert seen.count(1) >= 2, "job 1 events from both hosts"


def test_a_70_kb_argument_fails_on_every_host_and_the_connections_stay(sim, fleet):
    """Checked before sending (docs/protocol.md §2): the server would close the socket with 1009."""
    assert not fleet.call("core.ping", hosts="rack01").failed
    sim["sim001"].set_stall(True, frozenset({"system.info"}))
    slow = gevent.spawn(fleet["sim001"].call, "system.info")
    wait_until(lambda: fleet["sim001"].in_flight == 1)
    big = fleet.call("pool.dataset.query", [["id", "=", "x" * 70_000]], hosts="rack01")
    assert big.by_status() == {Status.FAILED: fleet.select("rack01")}
    reason = big["sim002"].to_dict()["error"]["reason"]
    assert "pool.dataset.query: not sent: the request is 700" in reason and "at most 65536" in reason
    sim["sim001"].set_stall(False)
    assert slow.get(timeout=10)["hostname"] == "sim001", "the call in flight on that connection"
    assert not fleet.call("core.ping", hosts="rack01").failed
    assert [sim[name].counters.connections for name in fleet.select("rack01")] == [1] * 20


def test_throttled_tls_rejected_and_job_unknown_through_real_faults(make_host, tmp_path, monkeypatch):
    trustme = pytest.importorskip("trustme")
    leaf = trustme.CA().issue_cert("127.0.0.1")
    leaf.private_key_pem.write_to_path(tmp_path / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(tmp_path / "cert.pem")
    tls = make_host("tls", certfile=str(tmp_path / "cert.pem"), keyfile=str(tmp_path / "key.pem"))
    busy = make_host("busy", clock=ManualClock(speed=1000))
    restarting = make_host("restarting", faults=Faults(job_duration=3600))
    raw = WsClient(busy.uri)
    ids = [raw.request("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": "x", "password": "y"})
           for _ in range(20)]
    [raw.reply(i) for i in ids]
    raw.close()
    monkeypatch.setenv("PW", "fleetclt-sim")
    text = "defaults: {username: admin, password: {env: PW}}\nhosts:\n" + "".join(
        f"  {h.name}: {{uri: '{h.uri}'}}\n" for h in (tls, busy, restarting))
    with Fleet.from_inventory(parse_inventory(text)) as fleet:
        assert fleet.call("core.ping", hosts="restarting").ok
        running = gevent.spawn(fleet.call, "update.update", {}, job=True)
        wait_until(lambda: restarting.counters.jobs_started == 1)
        restarting.restart()
        statuses = {name: r.status for name, r in running.get(timeout=20).items()}
        statuses.update({name: r.status for name, r in fleet.call("core.ping", hosts="tls,busy").items()})
    assert statuses == {"restarting": Status.JOB_UNKNOWN, "tls": Status.TLS_REJECTED, "busy": Status.THROTTLED}


def test_sessions_the_servers_ended_log_in_again_within_a_fan_out(sim, fleet):
    assert not fleet.call("core.ping").failed
    sim["sim002"].expire_sessions()
    sim["sim009"].expire_sessions()
    result = fleet.call("system.info")
    assert not result.failed and result["sim009"].result["hostname"] == "sim009"
    assert [h.counters.logins_ok for h in sim.hosts] == [2 if h.name in ("sim002", "sim009") else 1
                                                         for h in sim.hosts]


# Every fan-out checks the open-file limit first. A second one counted the sockets it
# already held twice: at 10,000 hosts and a hard limit of 20,000 it refused to run.
SECOND_FAN_OUT_NEAR_THE_LIMIT = """
import resource, sys
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.local.rlimit import FD_MARGIN
inventory = parse_inventory(sys.stdin.read(), "sim.yaml")
hosts = len(inventory.hosts)
limit = FD_MARGIN + hosts + hosts // 2  # room for the fleet's sockets once, not twice
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
with Fleet.from_inventory(inventory, forks=hosts) as fleet:
    print(*(len(fleet.call("core.ping").ok) for _ in range(2)))
"""


def test_a_second_fan_out_counts_the_open_sessions_once(sim):
    inventory = yaml.safe_dump(sim.inventory({"env": "SIMULATED_FLEET_PW"}))
    done = subprocess.run([sys.executable, "-c", SECOND_FAN_OUT_NEAR_THE_LIMIT], input=inventory,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "40 40\n", "")
