"""Where a Fleet runs: inline in the caller's hub, or in a hub thread; misuse fails at once."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fleetclt import Fleet, FleetError, UnknownHostError
from fleetclt.fleet.runner import FanOut, GeventRunner
from fleetclt.inventory.load import parse_inventory
from tests.helpers import wait_until

NOWHERE = parse_inventory("defaults: {username: admin, password: never-sent}\n"
                          "hosts:\n  nas01: {uri: 'ws://127.0.0.1:1/api/current'}\n"
                          "  nas02: {uri: 'ws://127.0.0.1:1/api/current'}\n")


def test_auto_is_inline_where_a_hub_runs_and_refuses_other_threads_at_once(simulated_fleet):
    _, inventory = simulated_fleet(2, "127.7.0.1", password="pw")  # the simulator runs in this thread's hub
    with Fleet(inventory) as fleet:
        assert fleet.hub_mode == "inline" and not fleet.call("core.ping").failed
        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool, pytest.raises(FleetError, match="hub='thread'"):
            pool.submit(fleet.call, "core.ping").result(timeout=5)
        assert time.monotonic() - started < 5


def test_thread_mode_runs_callbacks_and_subscriptions_in_its_hub_thread(simulated_fleet):
    sim, inventory = simulated_fleet(3, "127.7.1.1", password="pw")
    seen_in: set[str] = set()
    events: list[str] = []
    with Fleet(inventory, hub="thread") as fleet:
        assert not fleet.subscribe("pool.query", lambda event: events.append(event.fields["name"])).failed
        for host in sim.hosts:
            host.publish("pool.query", "changed", 1, {"name": host.name})
        wait_until(lambda: sorted(events) == [h.name for h in sim.hosts])  # with no call made meanwhile
        result = fleet.call("system.info", on_result=lambda r: seen_in.add(threading.current_thread().name))
        assert not result.failed and seen_in == {"fleetclt-hub"}
        wait_until(lambda: sorted(events) == [h.name for h in sim.hosts])  # with no call made meanwhile
        assert fleet["sim001"].stats.logins == 1, "a proxy that reads the session in the hub thread"


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_a_closed_fleet_refuses_calls_and_leaves_no_thread(mode):
    before = set(threading.enumerate())
    fleet = Fleet(NOWHERE, hub=mode)
    assert fleet.hub_mode == mode
    assert fleet.call("core.ping")["nas01"].status.value == "unreachable"
    fleet.close()
    fleet.close()  # a second close does nothing
    with pytest.raises(FleetError, match="closed"):
        fleet.call("core.ping")
    with pytest.raises(FleetError, match="closed"):
        fleet["nas01"]
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize("mode", ["inline", "thread"])
def test_an_unknown_host_names_the_known_ones(mode):
    with Fleet(NOWHERE, hub=mode) as fleet, pytest.raises(UnknownHostError) as raised:
        fleet["nope"]
    assert raised.value.name == "nope" and raised.value.known == ["nas01", "nas02"]


def test_a_runner_given_to_the_fleet_drives_its_fan_outs():
    class Recording(GeventRunner):
        def run(self, fan_out: FanOut) -> None:
            self.seen.append(list(fan_out.names))
            super().run(fan_out)
    runner = Recording(forks=3, max_connecting=1)
    runner.seen = []
    with Fleet(NOWHERE, runner=runner) as fleet:
        assert fleet.forks == 3 and len(fleet.call("core.ping", hosts="nas02")) == 1
    assert runner.seen == [["nas02"]]
    with pytest.raises(ValueError, match="belong to the runner"):
        Fleet(NOWHERE, runner=runner, forks=4)
