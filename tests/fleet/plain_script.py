"""A plain Python program driving a Fleet: no gevent, time.sleep between rounds, a ThreadPoolExecutor.

    python tests/fleet/plain_script.py INVENTORY SIM_PID IDLE_SECONDS

Run by test_plain_python.py against tests/fleet/plain_sim.py. Exits 0 when every
check passed; an AssertionError (or a bounded wait running out) otherwise.
"""
from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from fleetclt import Credentials, Fleet, FleetError, HostSession, HostSpec, Status, Timeouts, UnknownHostError

ROUNDS, DROPPED_BEFORE = 3, 1  # connections are cut (as by a crash) before round 1
WAIT = 10.0  # bound on every wait for something to happen


def keepalive_under(idle: float):
    """Sessions that ping well within the proxy's idle timeout, as a script facing one would set."""
    def session_for(spec: HostSpec) -> HostSession:
        return HostSession(spec.name, spec.uri, Credentials(spec.username, spec.password),
                           timeouts=Timeouts(connect=5, call=5, keepalive=idle / 3, ping=2))
    return session_for


def take(events: queue.Queue, count: int) -> list[str]:
    return sorted(events.get(timeout=WAIT) for _ in range(count))


def expect_events(fleet_names: list[str], events: queue.Queue, sim_pid: int) -> None:
    """Every host's event arrives with no call made meanwhile."""
    os.kill(sim_pid, signal.SIGUSR2)
    assert take(events, len(fleet_names)) == fleet_names


def rounds(fleet: Fleet, names: list[str], sim_pid: int, idle: float) -> None:
    groups = [names[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        for number in range(ROUNDS):
            if number == DROPPED_BEFORE:
                os.kill(sim_pid, signal.SIGUSR1)
            time.sleep(idle * 1.6)  # longer than the proxy's idle timeout
            results = list(pool.map(lambda group: fleet.call("system.info", hosts=group), groups))
            statuses = {name: r.status for result in results for name, r in result.items()}
            assert statuses == dict.fromkeys(names, Status.OK), (number, statuses)


def main(inventory: str, sim_pid: int, idle: float) -> None:
    fleet = Fleet.from_inventory(inventory, session_factory=keepalive_under(idle))
    assert fleet.hub_mode == "thread", fleet.hub_mode
    names = fleet.select("all")
    events: queue.Queue[str] = queue.Queue()
    subscribed = fleet.subscribe("pool.query", lambda event: events.put(event.fields["name"]))
    assert not subscribed.failed, subscribed
    expect_events(names, events, sim_pid)
    rounds(fleet, names, sim_pid, idle)
    expect_events(names, events, sim_pid)  # the subscription survived the drops
    logins = {fleet[name].stats.logins for name in names}
    assert logins == {2}, f"one login, one more after the drop, none for idle cuts: {logins}"
    try:
        fleet["nope"]
    except UnknownHostError as exc:
        assert exc.name == "nope" and exc.known == names
    else:
        raise AssertionError("fleet['nope'] gave a session")
    fleet.close()
    try:
        fleet.call("core.ping")
    except FleetError as exc:
        assert "closed" in str(exc)
    else:
        raise AssertionError("a closed fleet took a call")
    assert threading.enumerate() == [threading.main_thread()], threading.enumerate()
    print("OK", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))
