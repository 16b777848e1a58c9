"""Wall time of `fleetclt call --hosts all -o json system.version`, runs 2..N, with and without the agent.

Measured, not asserted (docs/agent.md shows the figures). Simulated hosts are
served by a `fleetclt sim` process of their own, so the measured CLI processes
do not share a CPU budget with the simulator's Python process more than the
machine forces:

    python -m tests.agent.measure --hosts 60
    python -m tests.agent.measure --hosts 1000 --listen 127.28.0.1
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gevent import subprocess

from tests.agent.helpers import PASSWORD, Cli
from tests.helpers import start_sim, stop_sim


def median_of_runs(cli: Cli, mode: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.monotonic()
        run = cli("call", "--hosts", "all", "--max-connecting", "200", "-o", "json", "system.version",
                  agent=mode, timeout=600)
        times.append(time.monotonic() - started)
        if run.code != 0:
            sys.exit(f"{mode}: exit {run.code}: {run.err[-500:]}")
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=60)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--listen", default="127.28.0.1")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fleetclt-measure-"))
    inventory = folder / "inventory.yaml"
    sim, _ = start_sim("--count", str(args.hosts), "--listen", args.listen, "--port", "0",
                       "--write-inventory", str(inventory), "--password-env", "AGENT_PW",
                       env={"AGENT_PW": PASSWORD})
    try:
        direct = median_of_runs(Cli(inventory, folder / "state-direct"), "off", args.runs)
        cli = Cli(inventory, folder / "state-agent")
        start = cli("agent", "start")
        assert start.code == 0, start.err
        try:
            via_agent = median_of_runs(cli, "require", args.runs)
            logins = cli.status()["logins"]
        finally:
            cli("agent", "stop")
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "fleetclt.cli", "--version"], capture_output=True,
                       env={**os.environ}, check=True)
        version = time.monotonic() - started
    finally:
        stop_sim(sim)
        shutil.rmtree(folder)
    print(f"{args.hosts} hosts, median of runs 2..{args.runs}: direct {direct:.3f} s, via the agent "
          f"{via_agent:.3f} s ({logins} agent logins); fleetclt --version {version:.3f} s")


if __name__ == "__main__":
    main()
