"""The agent's tests share these: a simulated fleet with an inventory file, the CLI as a subprocess, pids."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import yaml
from gevent import subprocess

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet

PASSWORD = "agent-pw"


@dataclass
class Run:
    code: int
    out: str
    err: str


def sim_fleet(count: int, base_address: str, folder: Path) -> SimFleet:
    """Simulated hosts, started, with their inventory at `folder`/inventory.yaml (password from $AGENT_PW)."""
    fleet = SimFleet.create(count, base_address=base_address, users={"admin": PASSWORD},
                            clock=SimClock(speed=1000), faults=Faults(job_duration=100.0)).start()
    fleet.inventory_path = folder / "inventory.yaml"
    fleet.inventory_path.write_text(yaml.safe_dump(fleet.inventory({"env": "AGENT_PW"})))
    return fleet


@contextmanager
def sims_running(count: int, base_address: str, folder: Path) -> Iterator[SimFleet]:
    """sim_fleet(...), stopped afterwards."""
    fleet = sim_fleet(count, base_address, folder)
    try:
        yield fleet
    finally:
        fleet.stop()


class Cli:
    """`fleetclt -i INVENTORY ...` subprocesses sharing one state dir (so they find one agent)."""

    def __init__(self, inventory: Path, state: Path) -> None:
        self.inventory, self.state = inventory, state
        self.env = {**os.environ, "AGENT_PW": PASSWORD, "FLEETCLT_STATE_DIR": str(state)}
        self.env.pop("FLEETCLT_AGENT", None)

    def __call__(self, *args: str, agent: str | None = None, timeout: float = 120) -> Run:
        env = self.env if agent is None else {**self.env, "FLEETCLT_AGENT": agent}
        result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(self.inventory), *args],
                                capture_output=True, text=True, env=env, timeout=timeout)
        return Run(result.returncode, result.stdout, result.stderr)

    def popen(self, *args: str, agent: str | None = None) -> subprocess.Popen:
        env = self.env if agent is None else {**self.env, "FLEETCLT_AGENT": agent}
        return subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "-i", str(self.inventory), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def status(self) -> dict:
        run = self("agent", "status", "-o", "json")
        assert run.code == 0, run.err
        return orjson.loads(run.out)

    def sockets(self) -> list[Path]:
        return sorted(self.state.glob("*.sock"))


def alive(pid: int) -> bool:
    """The process exists and is no zombie (an orphaned agent is reaped by whoever adopted it, maybe late)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_quietly(cli: Cli, pid: int | None) -> None:
    """Teardown: stop the agent if a test left it running; kill it if stopping fails."""
    if pid is None or not alive(pid):
        return
    if cli("agent", "stop").code != 0 and alive(pid):
        os.kill(pid, 9)


@contextmanager
def agent_running(cli: Cli, *options: str) -> Iterator[int]:
    """An agent for the cli's inventory and state dir (`options` go before `agent start`); its pid.
    Stopped afterwards whatever happened."""
    run = cli(*options, "agent", "start", "--idle", "10m")
    assert run.code == 0, run.err
    pid = int(run.out.split()[1])
    try:
        yield pid
    finally:
        stop_quietly(cli, pid)
