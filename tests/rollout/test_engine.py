"""Rollouts on a simulated fleet: stages seen on the hosts' own job records, budget, health, abort."""
from __future__ import annotations

import time

import gevent
import pytest

from fleetclt.fleet.fleet import Fleet
from fleetclt.rollout.engine import Rollout, run_rollout
from fleetclt.rollout.journal import Journal
from fleetclt.rollout.plan import RolloutPlan
from tests.helpers import wait_until

SIM_HOSTS = (45, "127.9.0.1")


def jobs_of(host):
    return list(host.engine.jobs.values())


def test_stages_run_one_after_another_as_seen_on_the_hosts(sim, fleet):
    result = run_rollout(fleet, "update.update", {}, hosts="all", batch="1,10%,100%")
    assert result.ok and result.stop_reason == "completed"
    stages = result.plan.stages
    assert [len(s) for s in stages] == [1, 4, 40]
    for earlier, later in zip(stages, stages[1:], strict=False):
        last_finish = max(jobs_of(sim[name])[0].time_finished for name in earlier)
        first_start = min(jobs_of(sim[name])[0].time_started for name in later)
        assert last_finish <= first_start, "a stage starts only after every job of the previous one ended"
    assert [h.counters.jobs_started for h in sim.hosts] == [1] * 45
    assert {r.stage for r in result.hosts.values()} == {0, 1, 2}


def test_budget_halts_and_no_job_starts_afterwards(sim, fleet):
    for name in ("sim002", "sim003", "sim004"):
        sim[name].faults.job_failure = "error"
    result = run_rollout(fleet, "update.update", {}, hosts="all", batch="1,2", max_fail="1")
    assert result.stop_reason.startswith("halted: 2 of 3 started hosts failed")
    states = {name: r.state for name, r in result.hosts.items()}
    assert states["sim001"] == "ok" and states["sim002"] == states["sim003"] == "failed"
    never = [name for name, state in states.items() if state == "not_started"]
    assert len(never) == 42 and all(sim[name].counters.jobs_started == 0 for name in never)
    assert result.to_dict()["summary"] == {"ok": 1, "failed": 2, "not_started": 42}


def test_percent_budget_is_cumulative_over_stages(sim, fleet):
    sim["sim003"].faults.job_failure = "error"
    result = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="all", batch="2", max_fail="25%")
    assert result.ok is False and result.stop_reason == "completed", "1 of 45 started stays under 25%"
    sim["sim006"].faults.job_failure = "error"
    sim["sim007"].faults.job_failure = "error"
    halted = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="all", batch="2", max_fail="25%")
    assert halted.stop_reason.startswith("halted: 2 of 6 started hosts failed"), "sim003 still fails"


def test_a_fully_failed_stage_is_judged_by_the_budget(sim, fleet):
    for name in ("sim001", "sim002"):
        sim[name].faults.job_failure = "error"
    tolerant = run_rollout(fleet, "service.control", "RESTART", "ssh", hosts="all", batch="2", max_fail="100%")
    assert tolerant.stop_reason == "completed" and tolerant.to_dict()["summary"]["ok"] == 43
    strict = run_rollout(fleet, "service.control", "RESTART", "ssh", hosts="all", batch="2")
    assert strict.stop_reason.startswith("halted") and strict.to_dict()["summary"]["not_started"] == 43


@pytest.mark.parametrize("health", ["system.ready", ("system.ready",), ["system.ready"]])
def test_health_gate_fails_hosts_that_are_not_ready(sim, fleet, health):
    sim["sim002"].faults.not_ready = True
    result = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="rack01", batch=[5], max_fail=3,
                         health=health)
    assert result.hosts["sim002"].state == "unhealthy"
    assert "system.ready returned False" in result.hosts["sim002"].error["reason"]
    assert result.stop_reason == "completed" and result.to_dict()["summary"]["ok"] == 19


def test_the_halt_reason_counts_every_failure_up_to_the_halt(sim, fleet):
    """The health gate fails all three hosts of the stage at once: the first spends the budget,
    and the reason still counts the three."""
    for name in ("sim001", "sim002", "sim003"):
        sim[name].faults.not_ready = True
    result = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="sim00[1-9]", batch=3, health="system.ready")
    assert result.stop_reason == "halted: 3 of 3 started hosts failed, beyond --max-fail 0"
    assert result.to_dict()["summary"] == {"unhealthy": 3, "not_started": 6}


def test_abort_on_halt_aborts_running_jobs(sim, fleet):
    for host in sim.hosts:
        host.faults.job_duration = 3600
    sim["sim005"].faults.job_duration = 200  # the last of the window fails once all five run
    sim["sim005"].faults.job_failure = "error"
    result = run_rollout(fleet, "update.update", {}, hosts="rack01", window=5, abort_on_halt=True)
    assert result.stop_reason.startswith("halted")
    aborted = [name for name, r in result.hosts.items() if r.error and "aborted" in r.error["reason"]]
    assert sorted(aborted) == ["sim001", "sim002", "sim003", "sim004"]
    assert all(jobs_of(sim[name])[0].state == "ABORTED" for name in aborted)
    assert sum(h.counters.jobs_started for h in sim.hosts) == 5


def test_every_step_is_in_the_journal(sim, fleet):
    result = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="rack01", batch="10")
    journal, replay = Journal.open(result.run_id)
    assert replay.header["plan"]["stages"] == [list(s) for s in result.plan.stages]
    assert {name: r.state for name, r in replay.hosts.items()} == {name: "ok" for name in result.hosts}
    assert all(r.job_id == 1 for r in replay.hosts.values())
    assert [n["event"] for n in replay.notes] == ["stage", "stage", "stopped"]


def interrupted_while_submitting(fleet, names, method="service.control", params=("RESTART", "nfs")):
    """A journal as a run killed after sending the job calls leaves it: each host `submitting`, with
    the boot id and the host's own clock read just before (as Rollout._submit records them)."""
    plan = RolloutPlan(method, params, batch="100%")
    first = Rollout.start(fleet, plan, names)
    for name in names:
        record = first.records[name]
        session = fleet.connected(name)
        host_time = session.call("system.info")["datetime"].timestamp()
        record.state, record.started = "submitting", time.time()
        record.boot_id, record.host_time = session.boot_id, host_time
        first.journal.host(record)
    return first.run_id


def resume(fleet, run_id):
    journal, replay = Journal.open(run_id)
    return Rollout.resume(fleet, journal, replay).run()


def test_resume_adopts_the_one_job_a_killed_run_sent_and_ignores_older_ones(sim, fleet):
    """Killed between sending the call and writing the job id: the job is found, not resubmitted.
    The server is asked by method only, and the start times are compared with the host's clock:
    the simulated hosts' clocks run far ahead of ours, so by our clock job 1 would count too."""
    assert fleet["sim001"].call("service.control", "RESTART", "nfs", job=True) is True  # before the rollout
    run_id = interrupted_while_submitting(fleet, ["sim001", "sim002"])
    assert fleet["sim001"].call("service.control", "RESTART", "nfs") == 2  # what the killed process had sent
    assert fleet["sim002"].call("service.control", "RESTART", "nfs") == 1
    result = resume(fleet, run_id)
    assert result.ok and result.hosts["sim001"].job_id == 2 and result.hosts["sim002"].job_id == 1
    assert [sim[n].counters.jobs_started for n in ("sim001", "sim002")] == [2, 1]
    assert result.hosts["sim001"].boot_id == sim["sim001"].boot_id


def test_resume_never_picks_between_candidates_or_across_a_restart(sim, fleet):
    run_id = interrupted_while_submitting(fleet, ["sim001", "sim002", "sim003"])
    for _ in range(2):
        fleet["sim001"].call("service.control", "RESTART", "nfs")
    fleet["sim002"].call("service.control", "RESTART", "ssh")  # another call of the method is not ours
    sim["sim003"].restart()
    wait_until(lambda: not fleet["sim003"].connected)
    result = resume(fleet, run_id)
    states = {name: record.state for name, record in result.hosts.items()}
    assert states == {"sim001": "job_unknown", "sim002": "job_unknown", "sim003": "job_unknown"}
    assert "2 candidates: 1, 2" in result.hosts["sim001"].error["reason"]
    assert "0 candidates" in result.hosts["sim002"].error["reason"]
    assert "restarted" in result.hosts["sim003"].error["reason"]
    assert [sim[n].counters.jobs_started for n in ("sim001", "sim002", "sim003")] == [2, 1, 0]


def test_resume_follows_a_journaled_job_only_under_its_boot(sim, fleet):
    for host in sim.hosts[:2]:
        host.hold_jobs(True)
    plan = RolloutPlan("service.control", ("RESTART", "nfs"), batch="100%")
    rollout = Rollout.start(fleet, plan, ["sim001", "sim002"])
    running = gevent.spawn(rollout.run)
    wait_until(lambda: all(r.state == "running" for r in rollout.records.values()))
    rollout.stop()
    running.get(timeout=10)
    journal, replay = Journal.open(rollout.run_id)
    assert {r.boot_id for r in replay.hosts.values()} == {sim["sim001"].boot_id, sim["sim002"].boot_id}
    sim["sim001"].restart()  # its boot-time job takes id 1, the id in the journal
    wait_until(lambda: not fleet["sim001"].connected)
    for host in sim.hosts[:2]:
        host.hold_jobs(False)
    result = Rollout.resume(fleet, journal, replay).run()
    assert result.hosts["sim001"].state == "job_unknown" and "restarted" in result.hosts["sim001"].error["reason"]
    assert result.hosts["sim002"].state == "ok" and result.hosts["sim002"].result is True
    assert [sim[n].counters.jobs_started for n in ("sim001", "sim002")] == [1, 1]


def test_a_thread_mode_fleet_runs_the_whole_rollout_in_its_hub_thread(simulated_fleet):
    """Plain Python gets a thread-mode Fleet; the rollout and its observers run in that hub."""
    import threading

    from fleetclt import BaseObserver

    sim, inventory = simulated_fleet(6, "127.9.4.1")
    seen: list[tuple[str, str]] = []

    class Record(BaseObserver):
        def host_finished(self, rollout, record):
            seen.append((record.host, threading.current_thread().name))

    with Fleet(inventory, hub="thread") as fleet:
        result = run_rollout(fleet, "update.update", {}, hosts="all", batch=[1, "50%"], observers=[Record()])
    assert result.ok and [len(stage) for stage in result.plan.stages] == [1, 3, 2]
    assert sorted(seen) == [(host.name, "fleetclt-hub") for host in sim.hosts]
    assert [h.counters.jobs_started for h in sim.hosts] == [1] * 6
