"""`fleetclt rollout` when its journal cannot be written: no job after the failed write, running jobs left
running, one line and exit 2 (exit 1 when the journal cannot even be created), and a resume once the disk
is fixed that submits nothing twice; the same through the agent.

The faults are the kernel's, in real processes: the journal swapped for a symlink to /dev/full (ENOSPC on
its next write), or a file size limit (RLIMIT_FSIZE, EFBIG with SIGXFSZ ignored). The simulated hosts
count the jobs submitted to them (Counters.jobs_started, as middlewared's job manager,
src/middlewared/middlewared/job.py, registers each job a call starts).
"""
from __future__ import annotations

import os
import re
import resource
import signal
from pathlib import Path

import orjson
import pytest

from tests.cli.rollout_helpers import cli_env, finish, first_line, fleetclt, running_in_journal, served
from tests.helpers import fill_disk, fix_disk, wait_until

NAMES = [f"sim{i:03d}" for i in range(1, 11)]
HOSTS = len(NAMES)


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, HOSTS, "127.10.6.1") as fleet:
        yield fleet


env = pytest.fixture(cli_env)  # the environment of the test's fleetclt processes


def hold(sim, held):
    for host in sim.hosts:
        host.hold_jobs(held)


def started(sim):
    return [host.counters.jobs_started for host in sim.hosts]


def no_traceback(err):
    assert "Traceback" not in err and "Error:" not in err.replace("fleetclt: ", ""), err


def disk_full_while_four_run(sim, env):
    """`rollout --window 4` whose journal fills up while 4 jobs run; sim001's end is the write that fails.

    Returns the run id, the journal and the finished process's (code, stdout, stderr)."""
    hold(sim, True)
    process = fleetclt(env, "-i", str(sim.inventory_path), "rollout", "--hosts", "all", "--window", "4",
                       "-o", "json", "update.update", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, NAMES[:4], stage=0), timeout=30)
    fill_disk(journal)
    sim["sim001"].hold_jobs(False)
    return run_id, journal, finish(process)


def the_line(run_id, journal, running):
    return (f"fleetclt: journal write failed: cannot write the rollout journal {journal}: No space left on device; "
            f"no new job was started, {running} running job(s) go on unrecorded; once the disk is fixed, "
            f"resume with: fleetclt rollout --resume {run_id}")


def test_a_full_disk_mid_run_stops_new_jobs_leaves_running_ones_and_a_resume_finishes(sim, env):
    run_id, journal, (code, out, err) = disk_full_while_four_run(sim, env)
    no_traceback(err)
    assert code == 2, err
    assert err.splitlines()[-1] == the_line(run_id, journal, running=3)
    assert started(sim) == [1, 1, 1, 1] + [0] * 6, "the freed slot of the window started nothing"
    assert all([job.state for job in sim[name].engine.jobs.values()] == ["RUNNING"] for name in NAMES[1:4])
    assert orjson.loads(out)["summary"] == {"ok": 1, "detached": 3, "not_started": 6}
    fix_disk(journal)
    hold(sim, False)
    code, out, err = finish(fleetclt(env, "rollout", "--resume", run_id, "-o", "json"))
    assert code == 0, err
    assert orjson.loads(out)["summary"] == {"ok": HOSTS} and started(sim) == [1] * HOSTS


def test_a_journal_that_cannot_be_created_is_one_line_before_any_job(sim, env):
    """A file size limit of 64 bytes: the header's first 64 go, then EFBIG; nothing is left behind."""
    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    process = fleetclt(env, "-i", str(sim.inventory_path), "rollout", "--hosts", "all", "update.update", "{}",
                       preexec_fn=limit_file_size)
    code, out, err = finish(process)
    rollouts = Path(env["FLEETCLT_STATE_DIR"]) / "rollouts"
    assert (code, out) == (1, ""), err
    assert re.fullmatch(rf"fleetclt: cannot write the rollout journal {rollouts}/[\d-]+[0-9a-f]{{4}}\.jsonl: "
                        r"File too large; the rollout did not start, no job was submitted\n", err), err
    assert started(sim) == [0] * HOSTS
    assert os.listdir(rollouts) == [], "neither a half journal nor its lock file is left"


def test_in_the_agent_the_run_ends_and_its_client_gets_the_line(sim, env):
    env = {**env, "FLEETCLT_AGENT": "on"}
    code, out, err = finish(fleetclt(env, "-i", str(sim.inventory_path), "agent", "start", "--idle", "10m"))
    assert code == 0, err
    agent = int(out.split()[1])
    try:
        run_id, journal, (code, out, err) = disk_full_while_four_run(sim, env)
        no_traceback(err)
        assert code == 2 and err.splitlines()[-1] == the_line(run_id, journal, running=3), err
        assert started(sim) == [1, 1, 1, 1] + [0] * 6
        fix_disk(journal)
        hold(sim, False)
        code, out, err = finish(fleetclt(env, "rollout", "--resume", run_id, "-o", "json"))
        assert code == 0, err
        assert orjson.loads(out)["summary"] == {"ok": HOSTS} and started(sim) == [1] * HOSTS
    finally:
        os.kill(agent, signal.SIGKILL)
