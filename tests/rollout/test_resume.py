"""Resuming on purpose: changed options, narrowed hosts, hosts gone from the inventory, secrets in arguments.

The simulated hosts' jobs and their counters are the truth: a host's `jobs_started`
says how often a job was submitted to it, whatever the rollout reports.
"""
from __future__ import annotations

import os
import time

import gevent
import pytest
import yaml

from fleetclt.errors import ConfigError
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.rollout.engine import Rollout, run_rollout
from fleetclt.rollout.journal import Journal, journal_dir, prune
from fleetclt.rollout.plan import RolloutPlan
from tests.helpers import wait_until

UNLOCK = {"datasets": [{"name": "tank/secure", "passphrase": "hunter2-not-in-any-journal"}]}


SIM_HOSTS = (6, "127.9.8.1")


def without(sim, *names):
    """An inventory of the simulated hosts but `names`, as after an operator removed them."""
    data = sim.inventory({"env": "SIMULATED_FLEET_PW"})
    for name in names:
        del data["hosts"][name]
    return parse_inventory(yaml.safe_dump(data), "sim.yaml")


def resume(fleet, run_id, **options):
    journal, replay = Journal.open(run_id)
    return Rollout.resume(fleet, journal, replay, **options).run()


def halted_after_sim002(sim, fleet):
    sim["sim002"].faults.job_failure = "error"
    result = run_rollout(fleet, "service.control", "RESTART", "nfs", hosts="all", batch="1")
    assert result.stop_reason.startswith("halted: 1 of 2 started hosts failed")
    return result.run_id


def started(sim):
    return [host.counters.jobs_started for host in sim.hosts]


def test_a_halted_rollout_continues_with_a_larger_budget_which_the_journal_keeps(sim, fleet):
    run_id = halted_after_sim002(sim, fleet)
    again = resume(fleet, run_id)
    assert again.stop_reason.startswith("halted: 1 of 2") and started(sim) == [1, 1, 0, 0, 0, 0]
    result = resume(fleet, run_id, max_fail="1")
    assert result.stop_reason == "completed" and started(sim) == [1] * 6
    assert result.to_dict()["summary"] == {"ok": 5, "failed": 1}
    _, replay = Journal.open(run_id)
    assert replay.plan["max_fail"] == "1", "a later resume keeps the budget it was given"


def test_a_new_batch_restages_only_the_hosts_never_started(sim, fleet):
    run_id = halted_after_sim002(sim, fleet)
    result = resume(fleet, run_id, max_fail="1", batch="2")
    assert [list(s) for s in result.plan.stages] == [["sim001"], ["sim002"], ["sim003", "sim004"],
                                                     ["sim005", "sim006"]]
    assert [result.hosts[f"sim00{i}"].stage for i in range(1, 7)] == [0, 1, 2, 2, 3, 3]
    for earlier, later in (("sim003", "sim005"), ("sim004", "sim006")):
        assert sim[earlier].engine.jobs[1].time_finished <= sim[later].engine.jobs[1].time_started


def test_a_window_replaces_the_batch_on_resume(sim, fleet):
    run_id = halted_after_sim002(sim, fleet)
    result = resume(fleet, run_id, max_fail="1", window=2)
    assert [len(s) for s in result.plan.stages] == [1, 1, 4] and result.plan.window == 2
    assert result.plan.batch == "100%" and started(sim) == [1] * 6


def test_resume_narrows_to_hosts_of_the_run_and_refuses_others(sim, fleet):
    run_id = halted_after_sim002(sim, fleet)
    with pytest.raises(ConfigError, match=f"sim009 not in rollout {run_id}: on resume, the hosts can "
                                          "only narrow the run's"):
        resume(fleet, run_id, hosts=["sim001", "sim009"])
    result = resume(fleet, run_id, hosts=["sim004"], max_fail="1")
    assert started(sim) == [1, 1, 0, 1, 0, 0]
    assert result.hosts["sim004"].state == "ok" and result.hosts["sim003"].state == "not_started"
    assert result.stop_reason == (f"incomplete: 3 of 6 hosts not done (outside --hosts of this resume); "
                                  f"resume with: fleetclt rollout --resume {run_id}")
    rest = resume(fleet, run_id)
    assert rest.stop_reason == "completed" and started(sim) == [1] * 6


def test_a_host_gone_from_the_inventory_is_reported_and_left_for_a_later_resume(sim, sim_and_inventory):
    for host in sim.hosts:
        host.hold_jobs(True)
    with Fleet(sim_and_inventory[1]) as fleet:
        rollout = Rollout.start(fleet, RolloutPlan("update.update", ({},), batch="2"), fleet.select("all"))
        running = gevent.spawn(rollout.run)
        wait_until(lambda: all(rollout.records[n].state == "running" for n in ("sim001", "sim002")))
        rollout.stop()
        running.get(timeout=10)
    with Fleet(without(sim, "sim001", "sim005")) as fleet:
        for host in sim.hosts:
            host.hold_jobs(False)
        result = resume(fleet, rollout.run_id)
    assert {name: r.state.value for name, r in result.hosts.items()} == {
        "sim001": "gone", "sim002": "ok", "sim003": "ok", "sim004": "ok", "sim005": "gone", "sim006": "ok"}
    assert result.hosts["sim005"].error == {"type": "NotInInventory", "reason": "not in the inventory any more"}
    assert result.stop_reason.startswith("incomplete: 2 of 6 hosts not done (not in the inventory any more)")
    assert started(sim) == [1, 1, 1, 1, 0, 1]
    with Fleet(sim_and_inventory[1]) as fleet:
        back = resume(fleet, rollout.run_id)
    assert back.stop_reason == "completed" and back.hosts["sim001"].job_id == 1 and started(sim) == [1] * 6


def test_job_arguments_are_journaled_redacted_and_given_again_on_resume(sim, fleet):
    for host in sim.hosts:
        sim[host.name].data.dataset("tank/secure")["locked"] = True
    sim["sim002"].faults.job_failure = "error"
    result = run_rollout(fleet, "pool.dataset.unlock", "tank/secure", UNLOCK, hosts="all", batch="1")
    assert result.stop_reason.startswith("halted")
    text = (journal_dir() / f"{result.run_id}.jsonl").read_text()
    assert "hunter2" not in text and '"passphrase":"********"' in text
    with pytest.raises(ConfigError, match="hold secrets, which its journal keeps only as a digest"):
        resume(fleet, result.run_id, max_fail="1")
    with pytest.raises(ConfigError, match="not the ones rollout .* started with"):
        resume(fleet, result.run_id, max_fail="1", params=["tank/secure", {"datasets": []}])
    done = resume(fleet, result.run_id, max_fail="1", params=["tank/secure", UNLOCK])
    assert done.stop_reason == "completed" and started(sim) == [1] * 6
    assert all(sim[n].data.dataset("tank/secure")["locked"] is False for n in ("sim003", "sim006"))


def test_journals_older_than_the_limit_are_pruned_unless_running():
    old, running, fresh = (Journal.create({"plan": {}, "inventory": "x.yaml"}) for _ in range(3))
    old.close()
    fresh.close()
    month_ago = time.time() - 31 * 86400
    for journal in (old, running):
        os.utime(journal.path, (month_ago, month_ago))
    assert prune(30) == [old.run_id]
    assert sorted(p.name for p in journal_dir().iterdir()) == sorted(
        f"{j.run_id}.{ext}" for j in (running, fresh) for ext in ("jsonl", "lock"))
    running.close()


def test_an_unusable_state_dir_is_one_config_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("FLEETCLT_STATE_DIR", str(tmp_path / "file"))
    with pytest.raises(ConfigError, match=r"cannot keep rollout journals in .*/file/rollouts: "):
        Journal.create({"plan": {}, "inventory": "x.yaml"})
