"""Simulated hosts behind an idle-cutting proxy, for the plain-Python test; a process of its own.

    python -m tests.fleet.plain_sim COUNT BASE_ADDRESS IDLE_SECONDS INVENTORY_PATH

Writes an inventory whose password is read from $PLAIN_SIM_PW, prints READY,
then serves until SIGTERM. SIGUSR1 drops every connection (no close frame),
SIGUSR2 publishes one `pool.query` event per host with fields {"name": host}.
This process uses gevent; the script under test must not.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import gevent
import yaml
from gevent.event import Event

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet

EVENT = "pool.query"


def publish_all(sim: SimFleet) -> None:
    for host in sim.hosts:
        host.publish(EVENT, "changed", 1, {"name": host.name})


def drop_all(sim: SimFleet) -> None:
    for host in sim.hosts:
        host.drop_connections()


def main(count: int, base: str, idle: float, inventory: Path) -> None:
    sim = SimFleet.create(count, base_address=base, users={"admin": os.environ["PLAIN_SIM_PW"]},
                          clock=SimClock(speed=1), faults=Faults(idle_timeout=idle)).start()
    inventory.write_text(yaml.safe_dump(sim.inventory({"env": "PLAIN_SIM_PW"})))
    stop = Event()
    handlers = [gevent.signal_handler(signal.SIGTERM, stop.set),
                gevent.signal_handler(signal.SIGUSR1, drop_all, sim),
                gevent.signal_handler(signal.SIGUSR2, publish_all, sim)]
    print("READY", flush=True)
    stop.wait()
    for handler in handlers:
        handler.cancel()
    sim.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), Path(sys.argv[4]))
