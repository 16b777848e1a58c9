"""Pipelined fan-out (fleetclt.fanout): connected hosts get one request each from one greenlet."""
from __future__ import annotations

import time

import pytest

from fleetclt.errors import CallTimeout
from fleetclt.fleet.fleet import Fleet
from fleetclt.fleet.results import Status

PASSWORD = "fanout-pw"


@pytest.fixture
def fleet(simulated_fleet):
    sim, inventory = simulated_fleet(12, "127.6.0.1", job_duration=50, password=PASSWORD)
    with Fleet.from_inventory(inventory, forks=4, max_connecting=4) as fleet:
        assert not fleet.call("core.ping").failed  # connects every host (the greenlet path)
        yield sim, fleet


def test_connected_hosts_take_the_pipelined_path_and_report_each_once(fleet):
    sim, fleet = fleet
    seen: list[str] = []
    result = fleet.call("system.info", on_result=lambda r: seen.append(r.host))
    assert sorted(seen) == sorted(result) and len(result) == 12 and not result.failed
    assert all(fleet[name].in_flight == 0 for name in result)
    assert [h.counters.logins_ok for h in sim.hosts] == [1] * 12


def test_a_deadline_times_out_the_stalled_host_and_frees_its_window(fleet):
    sim, fleet = fleet
    sim["sim003"].set_stall(True)
    started = time.monotonic()
    result = fleet.call("system.info", deadline=0.5)
    assert time.monotonic() - started < 5
    assert result["sim003"].status is Status.TIMEOUT and "deadline" in str(result["sim003"].error)
    assert sum(r.ok for r in result.values()) == 11
    assert fleet["sim003"].in_flight == 0  # the cancelled call gave its slot back
    sim["sim003"].set_stall(False)
    assert fleet.call("core.ping", hosts="sim003")["sim003"].result == "pong"


def test_a_full_window_falls_back_to_the_greenlet_path(fleet):
    sim, fleet = fleet
    sim["sim001"].set_stall(True)
    session = fleet["sim001"]
    calls = [session.start_call("core.ping", [], lambda value, error: None) for _ in range(10)]
    assert None not in calls and session.start_call("core.ping", [], lambda value, error: None) is None
    result = fleet.call("core.ping", deadline=0.5)  # sim001 waits for a slot on the greenlet path
    assert result["sim001"].status is Status.TIMEOUT and len(result.ok) == 11
    sim["sim001"].set_stall(False)
    for call in calls:
        call.cancel(CallTimeout("given up by the test", "sim001"))
    assert session.in_flight == 0
    assert not fleet.call("core.ping").failed

