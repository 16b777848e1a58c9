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
    environment = cli_env(tmp_path)
    environment.pop("FLEETCLT_AGENT", None)
    return environment


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
    hold(sim, True)
    run_id = detach(sim, env)
    wait_until(lambda: running_in_journal(journal_of(env, run_id), NAMES[:2], stage=0), timeout=30)
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
