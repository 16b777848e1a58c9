"""A simulator process for the file-transfer bench: `count` hosts whose system.debug writes `debug_bytes`.

`python -m bench.files_sim COUNT ADDRESS DEBUG_BYTES INVENTORY`: serves until SIGTERM,
writes an inventory (password by $FLEETCLT_BENCH_PASSWORD) and prints READY.
The simulator's CLI has no switch for the debug file's size, hence this process.
"""
from __future__ import annotations

import os
import signal
import sys

import gevent
import yaml
from gevent.event import Event

from bench.sims import PASSWORD_ENV
from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet


def main() -> None:
    count, address, debug_bytes, inventory = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
    fleet = SimFleet.create(count, base_address=address, users={"admin": os.environ[PASSWORD_ENV]},
                            clock=SimClock(speed=100), faults=Faults(job_duration=1.0, debug_size=debug_bytes))
    stop = Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    with fleet:
        with open(inventory, "w") as out:
            yaml.safe_dump(fleet.inventory({"env": PASSWORD_ENV}), out)
        print("READY", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
