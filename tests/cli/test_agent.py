"""`fleetclt agent`: real agent processes, real CLI processes, 60 simulated hosts (docs/agent.md).

The login counts come from the simulator (Counters.logins_ok), which counts
what auth.login_ex and its kin accepted, as middlewared's
src/middlewared/middlewared/plugins/auth.py does for each session.
"""
from __future__ import annotations

import os
import signal

import orjson
import pytest
import yaml

from tests.agent.helpers import PASSWORD, Cli, agent_running, alive, sim_fleet, stop_quietly
from tests.helpers import wait_until


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    fleet = sim_fleet(60, "127.25.0.1", tmp_path_factory.mktemp("agent-inv"))
    yield fleet
    fleet.stop()


@pytest.fixture
def cli(sim, tmp_path):
    return Cli(sim.inventory_path, tmp_path / "state")


@pytest.fixture
def agent(cli):
    """A running agent for the test's inventory and state dir; stopped afterwards whatever happened."""
    with agent_running(cli) as pid:
        yield pid


def logins(sim) -> list[int]:
    return [host.counters.logins_ok for host in sim.hosts]


def test_twelve_runs_log_in_once_per_host_and_stop_leaves_nothing(sim, cli):
    before = logins(sim)
    start = cli("agent", "start")
    assert start.code == 0 and start.out.startswith("agent ") and "30m unused" in start.out, start.err
    pid = int(start.out.split()[1])
    try:
        for _ in range(12):
            run = cli("call", "--hosts", "all", "-o", "json", "system.version", agent="require")
            assert run.code == 0 and run.err == "", run.err  # a budget wait would print a line here
            doc = orjson.loads(run.out)
            assert doc["summary"] == {"ok": 60}
            assert set(doc["hosts"]["sim007"]) == {"status", "elapsed", "result"}
        per_host = [after - was for after, was in zip(logins(sim), before, strict=True)]
        assert max(per_host) <= 1 and sum(per_host) == 60, per_host
        assert sum(host.counters.rate_limited for host in sim.hosts) == 0
        status = cli.status()
        assert status["pid"] == pid and status["logins"] == 60
        assert status["sessions"] == {"connected": 60, "not_opened": 0}
        assert status["inventory"] == str(sim.inventory_path) and status["requests"] >= 12
    finally:
        stop = cli("agent", "stop")
    assert stop.code == 0 and stop.out.strip() == f"agent {pid} stopped", stop.err
    assert not alive(pid), "the agent process is gone"
    assert cli.sockets() == [], "and its socket with it"
    wait_until(lambda: all(not host.connections for host in sim.hosts), timeout=10)  # sessions closed
    after = cli("call", "--hosts", "sim001", "-o", "json", "system.version", agent="require")
    assert after.code == 1 and "no agent for" in after.err and "agent start" in after.err


def test_start_twice_keeps_one_agent_and_status_reads_plainly(cli, agent):
    again = cli("agent", "start")
    assert again.code == 0 and again.out.split()[1] == str(agent)
    text = cli("agent", "status")
    assert text.code == 0 and text.out.startswith(f"agent {agent} for {cli.inventory}")
    assert "logins so far: 0" in text.out and "sessions: 60 not opened (60 hosts)" in text.out


def test_start_refuses_an_unset_secret_variable(cli):
    cli.env.pop("AGENT_PW")
    run = cli("agent", "start")
    assert run.code == 1 and "environment variable AGENT_PW is not set" in run.err
    assert "the agent resolves secrets in the environment it starts with" in run.err
    assert cli.sockets() == [] and len(run.err.splitlines()) == 1


def test_status_and_stop_without_an_agent_exit_1(cli):
    for action in ("status", "stop"):
        run = cli("agent", action)
        assert run.code == 1 and run.err.strip() == f"fleetclt: no agent is running for {cli.inventory}"


def test_idle_agent_stops_by_itself(cli):
    run = cli("agent", "start", "--idle", "1s")
    pid = int(run.out.split()[1])
    try:
        wait_until(lambda: not alive(pid), timeout=30)
    finally:
        stop_quietly(cli, pid)
    assert cli.sockets() == []


def test_idle_takes_a_duration(cli):
    run = cli("agent", "start", "--idle", "0m")
    assert run.code == 1 and "must be more than 0 seconds" in run.err


def test_sigkill_mid_call_is_reported_and_the_next_command_runs_directly(sim, cli, agent):
    for host in sim.hosts[:3]:
        host.jobs_released.clear()
    try:
        process = cli.popen("call", "--hosts", "sim00[123]", "-o", "jsonl", "-j", "pool.dataset.lock", "tank/secure")
        wait_until(lambda: sum(1 for host in sim.hosts[:3] for job in host.engine.jobs.values()
                               if job.method == "pool.dataset.lock" and job.state == "RUNNING") == 3, timeout=60)
        os.kill(agent, signal.SIGKILL)
        out, err = process.communicate(timeout=60)
    finally:
        for host in sim.hosts[:3]:
            host.jobs_released.set()
    assert process.returncode == 2
    rows = [orjson.loads(line) for line in out.splitlines()]
    assert {row["status"] for row in rows} == {"may_have_run"} and len(rows) == 3
    assert err.count("the agent went away mid-run") == 1 and "3 of 3 hosts" in err
    after = cli("call", "--hosts", "sim001", "-o", "json", "system.version")
    assert after.code == 0 and orjson.loads(after.out)["summary"] == {"ok": 1}
    assert after.err.count("running directly") == 1 and "stale socket is removed" in after.err
    quiet = cli("call", "--hosts", "sim001", "-o", "json", "system.version")
    assert quiet.code == 0 and quiet.err == "", "said once: the stale socket is gone"


def test_auto_starts_an_agent_on_first_use(sim, cli):
    first = cli("call", "--hosts", "rack01", "-o", "json", "core.ping", agent="auto")
    pid = int(first.err.split("(pid ")[1].split(";")[0])
    try:
        assert first.code == 0 and first.err.startswith("fleetclt: started an agent for")
        second = cli("call", "--hosts", "rack01", "-o", "json", "core.ping", agent="auto")
        assert second.code == 0 and second.err == ""
        assert cli.status()["pid"] == pid
    finally:
        stop_quietly(cli, pid)


def test_off_and_no_agent_bypass_it(sim, cli, agent):
    for run in (cli("call", "--hosts", "sim001", "-o", "json", "core.ping", agent="off"),
                cli("call", "--no-agent", "--hosts", "sim001", "-o", "json", "core.ping", agent="require")):
        assert run.code == 0
    assert cli.status()["requests"] == 1, "only the status request itself reached the agent"


def test_a_bad_mode_is_a_usage_error(cli):
    run = cli("call", "--hosts", "sim001", "core.ping", agent="sometimes")
    assert run.code == 1 and "FLEETCLT_AGENT is 'sometimes'" in run.err


def test_no_agent_is_refused_with_one_host(cli):
    run = cli("call", "--no-agent", "--uri", "ws://127.0.0.1:1", "core.ping")
    assert run.code == 1 and "--no-agent applies to fleet mode" in run.err


def test_inventory_changes_are_picked_up(sim, cli, agent):
    assert cli("call", "--hosts", "rack01", "-o", "json", "core.ping").code == 0
    text = sim.inventory_path.read_text()
    inventory = yaml.safe_load(text)
    del inventory["hosts"]["sim002"]
    inventory["hosts"]["sim003"]["timeout"] = 45  # changed: its session is made again
    before = logins(sim)
    try:
        sim.inventory_path.write_text(yaml.safe_dump(inventory))
        gone = cli("call", "--hosts", "sim002", "core.ping", agent="require")
        assert gone.code == 1 and "no host or group named 'sim002'" in gone.err
        wait_until(lambda: not sim["sim002"].connections, timeout=10)  # its session was closed
        assert cli("call", "--hosts", "rack01", "-o", "json", "core.ping", agent="require").code == 0
        delta = [after - was for after, was in zip(logins(sim), before, strict=True)]
        assert delta[:4] == [0, 0, 1, 0], "only the changed host logged in again"
        status = cli.status()
        assert status["hosts"] == 59 and status["reloads"] == 1
        sim.inventory_path.write_text("hosts: [")
        broken = cli("call", "--hosts", "sim001", "core.ping", agent="require")
        direct = cli("call", "--hosts", "sim001", "core.ping", agent="off")
        assert broken.code == direct.code == 1 and broken.err == direct.err and "invalid YAML" in broken.err
    finally:
        sim.inventory_path.write_text(text)
    assert cli("call", "--hosts", "sim002", "-o", "json", "core.ping", agent="require").code == 0


def frames(stderr: str, host: str) -> list[tuple[str, str]]:
    """The frames --debug logged for `host`: (direction, method or 'reply'), in the order logged."""
    found = []
    for line in stderr.splitlines():
        prefix = f"DEBUG fleetclt.client.link: {host} "
        if line.startswith(prefix):
            direction, _, frame = line[len(prefix):].partition(" ")
            message = orjson.loads(frame)
            found.append((direction, message.get("method") or message.get("msg") or "reply"))
    return found


def test_debug_through_the_agent_shows_the_same_masked_frames_and_only_while_asked(sim, cli, agent):
    """Frames are logged by the agent's sessions while a --debug command is served, masked as
    the direct path masks them (protocol/redact.py), and never into the agent's own log file."""
    argv = ("--debug", "call", "--hosts", "sim010", "-o", "json", "system.version")
    direct, relayed = cli(*argv, agent="off"), cli(*argv, agent="require")
    again = cli(*argv, agent="require")  # the session is logged in: its frames are the call's only
    quiet = cli("call", "--hosts", "sim010", "-o", "json", "system.version", agent="require")
    assert relayed.code == direct.code == quiet.code == 0
    assert orjson.loads(relayed.out)["hosts"]["sim010"]["result"] == "TrueNAS-25.10.1"
    assert sorted(frames(relayed.err, "sim010")) == sorted(frames(direct.err, "sim010"))
    assert (">", "auth.login_ex") in frames(relayed.err, "sim010") and '"********"' in relayed.err
    assert frames(again.err, "sim010") == [(">", "system.version"), ("<", "reply")]
    assert quiet.err == ""
    for run in (direct, relayed, again):
        assert PASSWORD not in run.err and PASSWORD not in run.out
    logs = list(cli.state.glob("agent-*.log"))
    assert len(logs) == 1 and "serving" in logs[0].read_text(), "the agent's log file"
    assert "fleetclt.client.link" not in logs[0].read_text() and "DEBUG" not in logs[0].read_text()
