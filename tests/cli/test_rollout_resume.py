"""`fleetclt rollout` as an operator meets it: one process per run, resume from anywhere and on purpose,
and one line (never a traceback) for what cannot be done.

Every rollout and resume is a real process; the simulated hosts count the jobs
submitted to them, which is what "every host gets exactly one job" is checked on.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest

from tests.cli.rollout_helpers import (
    cli_env,
    finish,
    first_line,
    fleetclt,
    kill,
    running_in_journal,
    served,
    write_inventory,
)
from tests.helpers import wait_until

NAMES = [f"sim{i:03d}" for i in range(1, 11)]


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, 10, "127.10.4.1") as fleet:
        yield fleet


env = pytest.fixture(cli_env)  # the environment of the test's fleetclt processes


def rollout(sim, env, *args, cwd=None):
    return fleetclt(env, "-i", str(sim.inventory_path), "rollout", *args, cwd=cwd)


def resume(env, run_id, *args, cwd=None):
    return fleetclt(env, "rollout", "--resume", run_id, "-o", "json", *args, cwd=cwd)


def started(sim):
    return [host.counters.jobs_started for host in sim.hosts]


def hold(sim, held):
    for host in sim.hosts:
        host.hold_jobs(held)


def killed_in_stage_one(sim, env, inventory=None, cwd=None):
    """A rollout of 4 + 6 hosts killed (SIGKILL) while the first 4 jobs run: its run id."""
    hold(sim, True)
    process = fleetclt(env, "-i", inventory or str(sim.inventory_path), "rollout", "--hosts", "all",
                       "--batch", "4", "-o", "json", "update.update", "{}", cwd=cwd)
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, NAMES[:4], stage=0), timeout=30)
    kill(process)
    return run_id


def no_traceback(err):
    assert "Traceback" not in err and "Error:" not in err.replace("fleetclt: ", ""), err


def test_two_resumes_started_together_one_refuses_and_every_host_gets_one_job(sim, env):
    run_id = killed_in_stage_one(sim, env)
    first, second = resume(env, run_id), resume(env, run_id)
    refused = None
    with_lock = {first.pid: first, second.pid: second}
    wait_until(lambda: any(p.poll() is not None for p in with_lock.values()), timeout=30)
    for process in list(with_lock.values()):
        if process.poll() is not None:
            refused = with_lock.pop(process.pid)
    (winner,) = with_lock.values()
    code, out, err = finish(refused)
    assert (code, out, err) == (1, "", f"fleetclt: rollout {run_id} is running (pid {winner.pid})\n")
    hold(sim, False)
    code, out, err = finish(winner)
    assert code == 0, err
    assert orjson.loads(out)["summary"] == {"ok": 10}
    assert started(sim) == [1] * 10, "each host got exactly one job"


def test_a_resume_while_the_rollout_runs_refuses_and_the_rollout_goes_on(sim, env):
    hold(sim, True)
    process = rollout(sim, env, "--hosts", "all", "--batch", "4", "-o", "json", "update.update", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, NAMES[:4], stage=0), timeout=30)
    assert finish(resume(env, run_id)) == (1, "", f"fleetclt: rollout {run_id} is running (pid {process.pid})\n")
    hold(sim, False)
    code, out, _ = finish(process)
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10


def test_resume_from_another_directory_uses_the_inventory_the_rollout_started_with(sim, env, tmp_path):
    """Started with `-i inventory.yaml` (relative); resumed where another inventory.yaml lies."""
    run_id = killed_in_stage_one(sim, env, inventory="inventory.yaml", cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "inventory.yaml").write_text("hosts:\n  other:\n    uri: ws://127.10.4.200:9/api/current\n")
    hold(sim, False)
    code, out, err = finish(resume(env, run_id, cwd=elsewhere))
    assert code == 0, err
    assert orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10


def test_a_host_removed_from_the_inventory_is_reported_not_a_traceback(sim, env):
    run_id = killed_in_stage_one(sim, env)
    write_inventory(sim, sim.inventory_path, "sim002", "sim009")
    hold(sim, False)
    code, out, err = finish(resume(env, run_id))
    no_traceback(err)
    report = orjson.loads(out)
    assert code == 2
    assert report["hosts"]["sim002"]["status"] == report["hosts"]["sim009"]["status"] == "gone"
    assert report["hosts"]["sim009"]["error"]["reason"] == "not in the inventory any more"
    assert report["summary"] == {"ok": 8, "gone": 2}
    assert report["stop_reason"].startswith("incomplete: 2 of 10 hosts not done (not in the inventory any more)")
    write_inventory(sim, sim.inventory_path)
    code, out, _ = finish(resume(env, run_id))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 10} and started(sim) == [1] * 10


def test_a_halted_rollout_is_continued_on_purpose(sim, env):
    sim["sim003"].faults.job_failure = "error"
    code, out, _ = finish(rollout(sim, env, "--hosts", "all", "--batch", "2", "-o", "json", "update.update", "{}"))
    report = orjson.loads(out)
    assert code == 2 and report["stop_reason"].startswith("halted: 1 of 4 started hosts failed")
    run_id = report["run_id"]
    code, out, err = finish(resume(env, run_id, "--hosts", "sim00[5-6]", "--max-fail", "1"))
    assert code == 2 and started(sim) == [1, 1, 1, 1, 1, 1, 0, 0, 0, 0], err
    assert orjson.loads(out)["stop_reason"].startswith("incomplete: 4 of 10 hosts not done (outside --hosts")
    code, out, _ = finish(resume(env, run_id, "--batch", "1"))
    report = orjson.loads(out)
    assert code == 2 and report["stop_reason"] == "completed", "the budget of 1 was kept in the journal"
    assert report["stages"][-4:] == [["sim007"], ["sim008"], ["sim009"], ["sim010"]]
    assert started(sim) == [1] * 10


@pytest.mark.parametrize("args, message", [
    (["--hosts", "sim00[1-3]"], "sim001, sim002, sim003 not in rollout {run_id}: on resume, the hosts can only "
                                "narrow the run's"),
    (["--batch", "1", "--window", "2"], "window 2 and batch '1' conflict: a window runs every host in one stage; "
                                        "give one of them"),
    (["--max-fail", "nan%"], "--max-fail: "),
    (["service.control", "RESTART", "nfs"], "rollout {run_id} runs update.update, not service.control"),
    (["update.update", "{\"x\": 1}"], "these job arguments are not the ones rollout {run_id} started with"),
])
def test_what_a_resume_cannot_honour_is_one_line(sim, env, args, message):
    code, out, _ = finish(rollout(sim, env, "--hosts", "sim00[4-9]", "-o", "json", "update.update", "{}"))
    run_id = orjson.loads(out)["run_id"]
    code, out, err = finish(resume(env, run_id, *args))
    assert (code, out) == (1, "") and len(err.splitlines()) == 1
    assert err.startswith("fleetclt: " + message.format(run_id=run_id)), err
    assert started(sim) == [0, 0, 0] + [1] * 6 + [0]


def test_batch_and_window_together_only_when_they_agree(sim, env):
    code, _, err = finish(rollout(sim, env, "--hosts", "all", "--batch", "1,50%", "--window", "3",
                                  "update.update", "{}"))
    assert code == 1 and err == ("fleetclt: window 3 and batch '1,50%' conflict: a window runs every host in one "
                                 "stage; give one of them\n")
    code, out, _ = finish(rollout(sim, env, "--hosts", "all", "--batch", "100%", "--window", "3", "-o", "json",
                                  "update.update", "{}"))
    assert code == 0 and [len(s) for s in orjson.loads(out)["stages"]] == [10]


def test_rollout_needs_hosts_and_an_empty_pattern_is_an_error_everywhere(sim, env):
    code, out, err = finish(rollout(sim, env, "update.update", "{}"))
    assert (code, out, err) == (1, "", "fleetclt: rollout needs --hosts PATTERN (--hosts all for every host)\n")
    for command in (["rollout", "update.update", "{}"], ["call", "core.ping"], ["ping"], ["hosts"]):
        code, out, err = finish(fleetclt(env, "-i", str(sim.inventory_path), command[0], "--hosts", "",
                                         *command[1:]))
        assert (code, out) == (1, ""), (command, err)
        assert err == "fleetclt: host pattern is empty (an unset variable?); use 'all' to select every host\n"
    assert started(sim) == [0] * 10 and all(host.counters.logins_ok == 0 for host in sim.hosts)


def test_failed_rollout_hosts_are_what_at_failed_selects(sim, env):
    for name in ("sim002", "sim003"):
        sim[name].faults.job_failure = "error"
    code, _, _ = finish(rollout(sim, env, "--hosts", "all", "--max-fail", "5", "update.update", "{}"))
    assert code == 2
    code, out, _ = finish(fleetclt(env, "-i", str(sim.inventory_path), "hosts", "--hosts", "@failed", "-o", "json"))
    assert code == 0 and list(orjson.loads(out)["hosts"]) == ["sim002", "sim003"]


@pytest.mark.parametrize("state", ["a file", "read-only"])
def test_an_unusable_state_dir_is_one_line(sim, env, tmp_path, state):
    path = tmp_path / "unusable"
    if state == "a file":
        path.write_text("")
    elif os.geteuid() == 0:  # root writes into a 0500 directory; nobody creates directories in /proc
        path = Path("/proc/self")
    else:
        path.mkdir(mode=0o500)
    code, out, err = finish(rollout(sim, {**env, "FLEETCLT_STATE_DIR": str(path)}, "--hosts", "all",
                                    "update.update", "{}"))
    assert (code, out) == (1, "") and len(err.splitlines()) == 1, err
    assert re.match(rf"fleetclt: cannot keep rollout journals in {path}/rollouts: .* \(set \$FLEETCLT_STATE_DIR "
                    r"to a writable directory\)$", err.splitlines()[0]), err
    assert started(sim) == [0] * 10
