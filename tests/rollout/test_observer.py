"""Rollout observers on a simulated fleet: the events a display sees, in lifecycle order."""
from __future__ import annotations

import logging

import gevent
import pytest

from fleetclt.fleet.fleet import Fleet
from fleetclt.rollout.engine import Rollout, run_rollout
from fleetclt.rollout.observer import BaseObserver, HostState
from fleetclt.rollout.plan import RolloutPlan
from tests.helpers import wait_until


class Recorder(BaseObserver):
    """A fourth display, as a web page or an agent would add one: every event, with the
    host's state at that moment (records change afterwards)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def stage_started(self, rollout, index):
        self.events.append(("stage_started", index))

    def host_started(self, rollout, record):
        self.events.append(("host_started", record.host, record.state))

    def host_progress(self, rollout, record, progress):
        self.events.append(("host_progress", record.host, progress.get("percent")))

    def host_finished(self, rollout, record):
        self.events.append(("host_finished", record.host, record.state))

    def host_unhealthy(self, rollout, record):
        self.events.append(("host_unhealthy", record.host, record.state))

    def host_detached(self, rollout, record):
        self.events.append(("host_detached", record.host, record.state))

    def halted(self, rollout, reason):
        self.events.append(("halted", reason))

    def finished(self, rollout, result):
        self.events.append(("finished", result))

    def names(self) -> list[str]:
        return [event[0] for event in self.events]

    def at(self, name: str, host: str | None = None) -> list[int]:
        """Positions of an event (for one host)."""
        return [i for i, event in enumerate(self.events) if event[0] == name and (host is None or event[1] == host)]


class Broken(BaseObserver):
    """A display with a bug in three of its events."""

    def stage_started(self, rollout, index):
        raise RuntimeError("stage display bug")

    def host_started(self, rollout, record):
        raise RuntimeError("host display bug")

    def finished(self, rollout, result):
        raise RuntimeError("summary display bug")


@pytest.fixture
def sim_and_fleet(simulated_fleet):
    sim, inventory = simulated_fleet(20, "127.11.0.1")
    with Fleet(inventory) as fleet:
        yield sim, fleet


def test_events_of_a_real_rollout_come_in_lifecycle_order(sim_and_fleet):
    sim, fleet = sim_and_fleet
    sim["sim007"].faults.job_failure = "error"
    sim["sim003"].faults.not_ready = True
    recorder = Recorder()
    result = run_rollout(fleet, "update.update", {}, hosts="all", batch="1,25%,100%", max_fail=5, health="system.ready",
                         observers=[recorder])
    events = recorder.events
    assert recorder.names().count("finished") == 1 and events[-1] == ("finished", result)
    stages = result.plan.stages
    assert [len(s) for s in stages] == [1, 5, 14]
    assert [events[i][1] for i in recorder.at("stage_started")] == [0, 1, 2]
    for index, stage in enumerate(stages):
        begins = recorder.at("stage_started")[index]
        for host in stage:
            (started,) = recorder.at("host_started", host)
            (finished,) = recorder.at("host_finished", host)
            assert begins < started < finished, f"{host}: its stage, then started, then finished"
            assert events[started][2] is HostState.SUBMITTING
            assert all(started < i < finished for i in recorder.at("host_progress", host))
            if index + 1 < len(stages):
                assert finished < recorder.at("stage_started")[index + 1], "stages run one after another"
    assert recorder.names().count("host_started") == recorder.names().count("host_finished") == 20
    assert recorder.names().count("host_progress") >= 20, "the simulated jobs report progress steps"
    assert events[recorder.at("host_finished", "sim007")[0]][2] is HostState.FAILED
    assert events[recorder.at("host_finished", "sim003")[0]][2] is HostState.OK
    (unhealthy,) = recorder.at("host_unhealthy")
    assert events[unhealthy] == ("host_unhealthy", "sim003", HostState.UNHEALTHY)
    assert unhealthy > max(recorder.at("host_finished", host)[0] for host in stages[1]), "gated after its stage"
    assert "halted" not in recorder.names() and result.stop_reason == "completed"


def test_halted_comes_once_and_no_host_starts_after_it(sim_and_fleet):
    sim, fleet = sim_and_fleet
    sim["sim002"].faults.job_failure = "error"
    recorder = Recorder()
    result = run_rollout(fleet, "update.update", {}, hosts="all", batch="1,2", observers=[recorder])
    (halted,) = recorder.at("halted")
    assert result.stop_reason == f"halted: {recorder.events[halted][1]}"
    assert halted > recorder.at("host_finished", "sim002")[0]
    assert all(i < halted for i in recorder.at("host_started"))
    assert recorder.names()[-1] == "finished"
    assert sum(h.counters.jobs_started for h in sim.hosts) == 3


def test_a_failing_observer_is_logged_and_the_rollout_goes_on(sim_and_fleet, caplog):
    sim, fleet = sim_and_fleet
    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="fleetclt.rollout.engine"):
        result = run_rollout(fleet, "update.update", {}, hosts="all", batch="10", observers=[Broken(), recorder])
    assert result.ok and [h.counters.jobs_started for h in sim.hosts] == [1] * 20
    assert recorder.names().count("host_finished") == 20 and recorder.names()[-1] == "finished"
    failures = [r for r in caplog.records if "observer" in r.getMessage() and r.exc_info]
    assert len(failures) == 2 + 20 + 1, "each failing call is logged: 2 stages, 20 hosts, the end"
    assert "summary display bug" in caplog.text


def test_stop_detaches_running_hosts_and_finished_still_comes_last(sim_and_fleet):
    sim, fleet = sim_and_fleet
    for host in sim.hosts:
        host.hold_jobs(True)  # no job may end before the stop
    recorder = Recorder()
    rollout = Rollout.start(fleet, RolloutPlan("update.update", ({},), window=5), fleet.select("all"),
                            observers=[recorder])
    running = gevent.spawn(rollout.run)
    try:
        wait_until(lambda: sum(r.state is HostState.RUNNING for r in rollout.records.values()) == 5, timeout=10)
        rollout.stop()
        result = running.get(timeout=10)
    finally:
        for host in sim.hosts:
            host.hold_jobs(False)
    detached = sorted(recorder.events[i][1] for i in recorder.at("host_detached"))
    assert detached == ["sim001", "sim002", "sim003", "sim004", "sim005"]
    assert "host_finished" not in recorder.names() and recorder.names()[-1] == "finished"
    assert result.to_dict()["summary"] == {"detached": 5, "not_started": 15}
