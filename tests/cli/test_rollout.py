"""`fleetclt rollout` in a subprocess: report contract, progress, SIGKILL and Ctrl-C then --resume."""
from __future__ import annotations

import signal
from pathlib import Path

import orjson
import pytest

from tests.cli.rollout_helpers import cli_env, finish, first_line, fleetclt, kill, running_in_journal, served
from tests.helpers import wait_until


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, 40, "127.10.0.1") as fleet:
        yield fleet


@pytest.fixture
def env(tmp_path):
    return cli_env(tmp_path)


def rollout(sim, env, *args):
    return fleetclt(env, "-i", str(sim.inventory_path), "rollout", *args)


def test_report_contract_and_progress_lines(sim, env):
    sim["sim005"].faults.job_failure = "validation"
    code, out, err = finish(rollout(sim, env, "--hosts", "rack01", "--batch", "1,50%", "--max-fail", "2",
                                    "--health", "system.ready", "-o", "json", "service.control", "RESTART", "nfs"))
    assert code == 2
    report = orjson.loads(out)
    assert report["stop_reason"] == "completed" and [len(s) for s in report["stages"]] == [1, 10, 9]
    assert report["summary"] == {"ok": 19, "failed": 1}
    bad = report["hosts"]["sim005"]
    assert bad["stage"] == 2 and bad["job_id"] == 1 and bad["error"]["type"] == "ValidationError"
    assert report["hosts"]["sim001"]["result"] is True and report["hosts"]["sim001"]["elapsed"] > 0
    assert "stage 2/3: 10 hosts" in err and "sim005: failed" in err and "sim010: ok" in err


def test_sigkill_mid_stage_then_resume_starts_no_job_twice(sim, env):
    process = rollout(sim, env, "--hosts", "all", "--batch", "10", "-o", "json", "update.update", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, ["sim011", "sim015"], stage=1), timeout=30)
    kill(process)
    started_before = sum(h.counters.jobs_started for h in sim.hosts)
    assert 11 <= started_before < 40
    code, out, err = finish(rollout(sim, env, "--resume", run_id, "-o", "json"))
    assert code == 0, err
    report = orjson.loads(out)
    assert report["summary"] == {"ok": 40} and report["run_id"] == run_id
    assert [h.counters.jobs_started for h in sim.hosts] == [1] * 40, "re-attached, never resubmitted"
    assert all(row["result"] is True for row in report["hosts"].values())


def test_ctrl_c_detaches_and_resume_finishes(sim, env):
    for host in sim.hosts:
        host.hold_jobs(True)  # no job may end before the interrupt, however slow the machine
    process = rollout(sim, env, "--hosts", "all", "--batch", "20", "-o", "json", "update.update", "{}")
    run_id, journal = first_line(process)
    wait_until(lambda: running_in_journal(journal, [f"sim{i:03d}" for i in range(1, 21)], stage=0), timeout=30)
    process.send_signal(signal.SIGINT)
    code, out, err = finish(process)
    for host in sim.hosts:
        host.hold_jobs(False)
    assert code == 130, "interrupted, as the README's exit code table says"
    assert err.splitlines()[-1] == f"interrupted; resume with: fleetclt rollout --resume {run_id}"
    report = orjson.loads(out)
    assert report["stop_reason"].startswith("interrupted")
    assert report["summary"] == {"detached": 20, "not_started": 20}
    code, out, _ = finish(rollout(sim, env, "--resume", run_id, "-o", "json"))
    assert code == 0 and orjson.loads(out)["summary"] == {"ok": 40}
    assert [h.counters.jobs_started for h in sim.hosts] == [1] * 40


@pytest.mark.parametrize("flag, value, message", [
    ("--batch", "0", "fleetclt: --batch: '0' must be a positive count"),
    ("--max-fail", "x", "fleetclt: --max-fail: 'x' is neither a count nor a percentage"),
    ("--health", "'system.ready", "fleetclt: --health: cannot read"),
])
def test_usage_errors_name_the_flag(sim, env, flag, value, message):
    code, out, err = finish(rollout(sim, env, "--hosts", "all", flag, value, "update.update"))
    assert code == 1 and out == ""
    assert err.startswith(message), err
    assert sum(h.counters.jobs_started for h in sim.hosts) == 0


def test_usage_errors_exit_1(sim, env):
    assert finish(rollout(sim, env, "--resume", "nope"))[0] == 1
    assert finish(rollout(sim, env, "--hosts", "all"))[0] == 1


@pytest.fixture
def mixed(tmp_path):
    """Two hosts of each version from 24.10 to 26.0, all in one stage."""
    with served(tmp_path, 8, "127.10.1.1", versions=("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")) as fleet:
        yield fleet


def test_sigkill_while_every_host_is_submitting_then_resume_adopts_each_job(mixed, env):
    """Every job runs but no reply (its id) has reached the rollout when it dies: resume must find
    each job without a time filter on the server (24.10 to 26.0 fail one) and start none again."""
    for host in mixed.hosts:
        host.hold_job_replies(True)
    process = rollout(mixed, env, "--hosts", "all", "--batch", "100%", "-o", "json", "pool.dataset.lock", "tank/secure")
    run_id, journal = first_line(process)
    names = [h.name for h in mixed.hosts]
    wait_until(lambda: all(h.counters.jobs_started == 1 for h in mixed.hosts)
               and all(f'"host":"{n}","stage":0,"state":"submitting"' in Path(journal).read_text() for n in names),
               timeout=30)
    kill(process)
    for host in mixed.hosts:
        host.hold_job_replies(False)
    assert '"state":"running"' not in Path(journal).read_text()
    code, out, err = finish(rollout(mixed, env, "--resume", run_id, "-o", "json"))
    assert code == 0, err
    report = orjson.loads(out)
    assert report["summary"] == {"ok": 8}
    assert all(row["result"] is True and row["job_id"] == 1 for row in report["hosts"].values())
    assert [h.counters.jobs_started for h in mixed.hosts] == [1] * 8, "adopted, never resubmitted"
