"""The agent process: `python -m fleetclt.agent --idle SECONDS INVENTORY`, started by `fleetclt agent start`.

Like cli/main.py for the command, this is where the agent process sets its
process-wide state: logging (stderr is the agent's log file), signals, the GC.
It tells its starter how the start went with one line on stdout, then lets go
of it: `READY <pid>`, `RUNNING` (another agent has this inventory) or
`ERROR <message>`.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sys

import gevent

from ..errors import FleetError
from ..local.state import agent_files
from .server import Agent, AlreadyRunning, run_agent

log = logging.getLogger("fleetclt.agent")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetclt.agent")
    parser.add_argument("--idle", type=float, required=True, help="stop after this many seconds unused")
    parser.add_argument("inventory", help="the inventory's absolute path")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # the file keeps warnings only, also while the library logs frames for a --debug command (agent/debuglog.py)
    logging.getLogger().handlers[0].setLevel(logging.WARNING)
    gevent.config.track_greenlet_tree = False  # as the CLI, for the same reason (docs/performance.md §1)
    gc.freeze()
    try:
        why = run_agent(args.inventory, agent_files(args.inventory), args.idle, _ready)
    except AlreadyRunning:
        _tell("RUNNING")
        return 0
    except (FleetError, OSError) as exc:
        _tell(f"ERROR {exc}")
        return 1
    log.warning("agent %d stopped: %s", os.getpid(), why)
    return 0


def _ready(agent: Agent) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        gevent.signal_handler(signum, agent.stop)
    log.warning("agent %d serving %s on %s, idle limit %g s", os.getpid(), agent.fleets.path,
                agent.files.socket, agent.idle)
    _tell(f"READY {os.getpid()}")


def _tell(line: str) -> None:
    """One line to the starter, then stdout goes nowhere: the starter exits and nobody reads it."""
    if sys.stdout is None or sys.stdout.closed:
        return
    with contextlib.suppress(OSError):
        print(line, flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
