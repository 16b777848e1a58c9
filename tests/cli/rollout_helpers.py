"""What the CLI rollout tests share: simulated hosts with an inventory file, and `fleetclt rollout` runs."""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gevent
import yaml
from gevent import subprocess

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet


@contextmanager
def served(tmp_path: Path, count: int, address: str, **create: Any) -> Iterator[SimFleet]:
    """`count` simulated hosts from `address`, jobs of about a second, and `inventory_path` naming them
    (the password read from $ROLL_PW)."""
    create.setdefault("clock", SimClock(speed=100))
    create.setdefault("faults", Faults(job_duration=100))
    fleet = SimFleet.create(count, base_address=address, users={"admin": "pw"}, **create)
    with fleet:
        fleet.inventory_path = tmp_path / "inventory.yaml"
        write_inventory(fleet, fleet.inventory_path)
        yield fleet


def write_inventory(fleet: SimFleet, path: Path, *leave_out: str) -> None:
    data = fleet.inventory({"env": "ROLL_PW"})
    for name in leave_out:
        del data["hosts"][name]
    path.write_text(yaml.safe_dump(data))


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "ROLL_PW": "pw", "FLEETCLT_STATE_DIR": str(tmp_path / "state")}


def fleetclt(env: dict[str, str], *args: str, cwd: Path | None = None, **popen: Any) -> subprocess.Popen:
    """`popen`: more of Popen's arguments, e.g. a preexec_fn that sets a resource limit."""
    return subprocess.Popen([sys.executable, "-m", "fleetclt.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd=cwd, **popen)


def first_line(process: subprocess.Popen) -> tuple[str, str]:
    """The run id and journal path a rollout prints first."""
    with gevent.Timeout(30):
        line = process.stderr.readline()
    assert line.startswith("rollout "), line
    return line.split()[1].rstrip(":"), line.split()[-1]


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    with gevent.Timeout(60):
        out, err = process.communicate()
    return process.returncode, out, err


def kill(process: subprocess.Popen) -> None:
    """SIGKILL: nothing of the process runs any more, its lock goes with it."""
    process.kill()
    process.wait()
    process.stdout.close()
    process.stderr.close()


def running_in_journal(journal: str, hosts: list[str], stage: int) -> bool:
    """The journal says these hosts' jobs are running (their ids are recorded)."""
    text = Path(journal).read_text()
    return all(f'"host":"{h}","stage":{stage},"state":"running"' in text for h in hosts)
