"""Rollouts in the agent: `--detach`, `list`, `attach`, `stop [--abort]`, and what survives a kill (docs/agent.md).

Real agent processes, real CLI processes, simulated hosts over loopback. The
simulated hosts count the jobs submitted to them (Counters.jobs_started, as
middlewared's job manager, src/middlewared/middlewared/job.py, registers each
job a client's call starts), which is what "nothing is submitted twice" is
checked on; core.job_abort follows src/middlewared/middlewared/plugins/core.py.
"""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import gevent
import orjson
import pytest
import yaml

from tests.agent.helpers import alive
from tests.cli.rollout_helpers import cli_env, finish, first_line, fleetclt, kill, running_in_journal, served
from tests.helpers import wait_until

NAMES = [f"sim{i:03d}" for i in range(1, 11)]


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, 10, "127.41.0.1") as fleet:
        yield fleet


@pytest.fixture
def env(tmp_path):
    return {**cli_env(tmp_path), "FLEETCLT_AGENT": "on"}   # the default, whatever the test runner's is


@pytest.fixture
def agent(sim, env):
    """A running agent of the test's inventory; killed afterwards if a test left it running."""
    code, out, err = finish(cli(sim, env, "agent", "start", "--idle", "10m"))
    assert code == 0, err
    pid = int(out.split()[1])
    yield pid
    if alive(pid):
        os.kill(pid, signal.SIGKILL)


def cli(sim, env, *args, agent=None):
    return fleetclt(env if agent is None else {**env, "FLEETCLT_AGENT": agent}, "-i", str(sim.inventory_path), *args)


def hold(sim, held):
    for host in sim.hosts:
        host.hold_jobs(held)


def started(sim):
    return [host.counters.jobs_started for host in sim.hosts]


def journal_of(env, run_id):
    return str(Path(env["FLEETCLT_STATE_DIR"]) / "rollouts" / f"{run_id}.jsonl")


def detach(sim, env, *args, agent=None):
    """`rollout --detach` over the 10 hosts in stages of 2 (more options in `args`): its run id."""
    code, out, err = finish(cli(sim, env, "rollout", "--detach", "--hosts", "all", "--batch", "2", *args,
                                "update.update", "{}", agent=agent))
    assert code == 0, err
    run_id = out.strip()
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", run_id), out
    assert err.startswith(f"rollout {run_id} runs in agent ") and f"rollout attach {run_id}" in err
    return run_id


def held_in_stage_one(sim, env):
    """A detached rollout whose first stage's two jobs run (journaled) and are held there: its run id."""
    hold(sim, True)
    run_id = detach(sim, env)
    wait_until(lambda: running_in_journal(journal_of(env, run_id), NAMES[:2], stage=0), timeout=30)
    return run_id


def foreground_in_stage_one(sim, env):
    """A foreground rollout through the agent, its first stage's two jobs held running: the client, the run id."""
    hold(sim, True)
    process = cli(sim, env, "rollout", "--hosts", "all", "--batch", "2", "-o", "json", "update.update", "{}",
                  agent="require")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, NAMES[:2], stage=0), timeout=30)
    return process, run_id


def listed(sim, env, run_id):
    code, out, err = finish(cli(sim, env, "rollout", "list", "-o", "json"))
    assert code == 0, err
    (row,) = [row for row in orjson.loads(out)["rollouts"] if row["run_id"] == run_id]
    return row


def attached(sim, env, run_id):
    """An `attach` process, once it said it is attached."""
    process = cli(sim, env, "rollout", "attach", run_id, "-o", "json")
    with gevent.Timeout(30):
        line = process.stderr.readline()
    assert line.startswith(f"attached to rollout {run_id} (agent "), line
    return process


def test_detach_list_attach_then_stop_lets_running_jobs_finish(sim, env, agent):
    run_id = held_in_stage_one(sim, env)
    row = listed(sim, env, run_id)
    assert row == {**row, "method": "update.update", "state": "running", "done": 0, "failed": 0, "total": 10,
                   "pid": agent, "agent": True}
    code, out, _ = finish(cli(sim, env, "agent", "status", "-o", "json"))
    assert code == 0 and orjson.loads(out)["rollouts"] == [run_id]
    viewer = attached(sim, env, run_id)
    code, out, err = finish(cli(sim, env, "rollout", "stop", run_id))
    assert (code, out) == (0, "") and err.startswith(f"rollout {run_id}: no new job will start; 2 running jobs "
                                                     "finish and are recorded"), err
    hold(sim, False)
    code, out, err = finish(viewer)
    report = orjson.loads(out)
    assert code == 2, err
    assert report["summary"] == {"ok": 2, "not_started": 8}
    assert report["stop_reason"] == (f"stopped: 8 of 10 hosts not started, as asked; resume with: fleetclt rollout "
                                      f"--resume {run_id}")
    assert "sim001: ok" in err and "HALTED: stop asked (fleetclt rollout stop)" in err
    assert started(sim) == [1, 1] + [0] * 8
    assert listed(sim, env, run_id)["state"] == "stopped" and listed(sim, env, run_id)["pid"] is None
    code, again, _ = finish(cli(sim, env, "rollout", "attach", run_id, "-o", "json"))
    assert code == 2 and orjson.loads(again)["summary"] == report["summary"], "an ended run: from its journal"
    code, out, err = finish(cli(sim, env, "rollout", "--resume", run_id, "-o", "json"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10, err


def test_stop_abort_aborts_the_running_jobs_on_their_hosts(sim, env, agent):
    run_id = held_in_stage_one(sim, env)
    code, _, err = finish(cli(sim, env, "rollout", "stop", run_id, "--abort"))
    assert code == 0 and "2 running jobs are being aborted" in err, err
    code, out, err = finish(cli(sim, env, "rollout", "attach", run_id, "-o", "json"))  # live or from the journal
    report = orjson.loads(out)
    assert code == 2, err
    assert report["summary"] == {"failed": 2, "not_started": 8}
    for name in NAMES[:2]:
        assert "abort" in report["hosts"][name]["error"]["reason"].lower(), report["hosts"][name]
    assert [job.state for host in sim.hosts[:2] for job in host.engine.jobs.values()
            if job.credentials is not None] == ["ABORTED", "ABORTED"]
    assert started(sim) == [1, 1] + [0] * 8
    code, out, err = finish(cli(sim, env, "rollout", "stop", run_id))
    assert (code, out) == (1, "") and err.startswith(f"fleetclt: rollout {run_id} is not running: it ended (stopped:")


def test_a_killed_viewer_only_stops_viewing(sim, env, agent):
    hold(sim, True)
    run_id = detach(sim, env)
    kill(attached(sim, env, run_id))
    wait_until(lambda: running_in_journal(journal_of(env, run_id), NAMES[:2], stage=0), timeout=30)
    viewer = attached(sim, env, run_id)
    hold(sim, False)
    code, out, err = finish(viewer)
    assert code == 0, err
    report = orjson.loads(out)
    assert report["summary"] == {"ok": 10} and report["stop_reason"] == "completed" and started(sim) == [1] * 10
    assert "stage 5/5: 2 hosts" in err, "the viewer saw the run go on"


@pytest.mark.parametrize("resumed_by", ["off", "auto"])
def test_agent_killed_mid_rollout_then_resume_submits_nothing_twice(sim, env, agent, resumed_by):
    """kill -9 while stage 1's jobs run and stage 2's job calls are sent but their ids not yet back."""
    run_id = held_in_stage_one(sim, env)
    journal = journal_of(env, run_id)
    for host in sim.hosts[2:4]:
        host.hold_job_replies(True)
    hold(sim, False)
    wait_until(lambda: started(sim)[2:4] == [1, 1], timeout=30)
    os.kill(agent, signal.SIGKILL)
    wait_until(lambda: not alive(agent), timeout=10)
    assert '"host":"sim003","stage":1,"state":"submitting"' in Path(journal).read_text()
    for host in sim.hosts[2:4]:
        host.hold_job_replies(False)
    code, out, err = finish(cli(sim, env, "rollout", "--resume", run_id, "-o", "json", agent=resumed_by))
    assert code == 0, err
    assert orjson.loads(out)["summary"] == {"ok": 10}
    assert started(sim) == [1] * 10, "re-attached and adopted, never resubmitted"
    assert ("started an agent" in err) == (resumed_by == "auto")


@pytest.mark.parametrize("mode, message", [
    ("off", "fleetclt: rollout --detach runs in the agent, and FLEETCLT_AGENT=off or --no-agent says not to use it\n"),
    (None, "fleetclt: rollout --detach runs in the agent, and none is running for {inventory}: start one with "
           "fleetclt -i {inventory} agent start (or set FLEETCLT_AGENT=auto)\n"),
])
def test_detach_without_an_agent_is_refused_saying_how(sim, env, mode, message):
    code, out, err = finish(cli(sim, env, "rollout", "--detach", "--hosts", "all", "update.update", "{}", agent=mode))
    assert (code, out, err) == (1, "", message.format(inventory=sim.inventory_path))
    assert started(sim) == [0] * 10 and not list((Path(env["FLEETCLT_STATE_DIR"]) / "rollouts").glob("*.jsonl"))


def test_ctrl_c_on_a_foreground_rollout_through_the_agent_interrupts_it_as_without(sim, env, agent):
    process, run_id = foreground_in_stage_one(sim, env)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    assert code == 130, err
    assert f"stopping: no new jobs; resume with: fleetclt rollout --resume {run_id}" in err
    assert err.endswith(f"interrupted; resume with: fleetclt rollout --resume {run_id}\n")
    assert orjson.loads(out)["summary"] == {"detached": 2, "not_started": 8}
    hold(sim, False)
    code, out, err = finish(cli(sim, env, "rollout", "--resume", run_id, "-o", "json", agent="require"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10, err


def test_ctrl_c_on_attach_detaches_and_the_rollout_goes_on(sim, env, agent):
    hold(sim, True)
    run_id = detach(sim, env)
    viewer = attached(sim, env, run_id)
    viewer.send_signal(signal.SIGINT)
    code, out, err = finish(viewer)
    assert (code, out) == (0, "") and err.endswith(f"detached; the rollout goes on: fleetclt rollout attach {run_id}\n")
    assert listed(sim, env, run_id)["state"] == "running"
    hold(sim, False)
    code, out, err = finish(cli(sim, env, "rollout", "attach", run_id, "-o", "json"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10, err


def test_agent_stop_interrupts_its_rollouts_and_resume_finishes_them(sim, env, agent):
    run_id = held_in_stage_one(sim, env)
    code, out, err = finish(cli(sim, env, "agent", "stop"))
    assert code == 0 and out == f"agent {agent} stopped\n", err
    assert listed(sim, env, run_id)["state"] == "interrupted"
    code, out, err = finish(cli(sim, env, "rollout", "attach", run_id, "-o", "json"))
    assert code == 130 and orjson.loads(out)["summary"] == {"detached": 2, "not_started": 8}, err
    hold(sim, False)
    code, out, err = finish(cli(sim, env, "rollout", "--resume", run_id, "-o", "json"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10, err


@pytest.mark.parametrize("argv, message", [
    (["list", "extra"], "rollout list takes no arguments"),
    (["attach"], "rollout attach needs one RUN_ID (rollout list shows them)"),
    (["stop", "a", "b"], "rollout stop needs one RUN_ID (rollout list shows them)"),
    (["attach", "x", "--abort"], "--abort applies to `rollout stop RUN_ID` only"),
    (["list", "--detach"], "--detach applies to starting or resuming a rollout, not to rollout list"),
    (["attach", "20000101-000000-dead"], "no rollout journal {state}/rollouts/20000101-000000-dead.jsonl (run ids "
                                         "are listed in {state}/rollouts)"),
])
def test_what_list_attach_and_stop_cannot_do_is_one_line(sim, env, argv, message):
    code, out, err = finish(cli(sim, env, "rollout", *argv))
    assert (code, out, err) == (1, "", f"fleetclt: {message.format(state=env['FLEETCLT_STATE_DIR'])}\n")


def test_a_killed_foreground_client_stops_its_rollout_as_a_killed_process_would(sim, env, agent):
    process, run_id = foreground_in_stage_one(sim, env)
    kill(process)
    wait_until(lambda: listed(sim, env, run_id)["state"] == "interrupted", timeout=30)
    hold(sim, False)
    code, out, err = finish(cli(sim, env, "rollout", "--resume", run_id, "-o", "json"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10, err


def test_an_inventory_edit_mid_rollout_waits_for_the_rollout_before_it_remakes_the_host(sim, env, agent):
    """A changed host's session is not closed under its running job (the job would be lost to the
    rollout: the host ended failed while its job went on); it is re-made once the rollout ends."""
    run_id = held_in_stage_one(sim, env)
    data = yaml.safe_load(sim.inventory_path.read_text())
    data["hosts"]["sim001"].setdefault("vars", {})["site"] = "moved"
    sim.inventory_path.write_text(yaml.safe_dump(data))
    logins = sim["sim001"].counters.logins_ok
    code, out, err = finish(cli(sim, env, "hosts", "--hosts", "sim001", "-o", "json"))  # the agent re-reads it
    assert code == 0 and orjson.loads(out)["hosts"]["sim001"]["vars"]["site"] == "moved", err
    hold(sim, False)
    code, out, err = finish(cli(sim, env, "rollout", "attach", run_id, "-o", "json"))
    assert code == 0, err
    assert {name: row["status"] for name, row in orjson.loads(out)["hosts"].items()} == dict.fromkeys(NAMES, "ok")
    assert sim["sim001"].counters.logins_ok == logins, "its session followed the job to the end"
    assert finish(cli(sim, env, "call", "--hosts", "sim001", "core.ping"))[0] == 0
    assert sim["sim001"].counters.logins_ok == logins + 1, "then it was re-made from the new settings"
