"""Helpers the tests share (kept out of conftest.py, which pytest does not mean to be imported)."""
from __future__ import annotations

import os
import signal
import sys

import gevent
import pytest
import yaml
from gevent import subprocess

from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.sim.fleet import SimFleet


def wait_until(predicate, timeout=10.0, step=0.005):
    """Wait for a condition another greenlet or the server brings about (bounded)."""
    with gevent.Timeout(timeout, AssertionError(f"condition not met within {timeout} s")):
        while not predicate():
            gevent.sleep(step)


def record_tokens(monkeypatch) -> list[str]:
    """Every auth token the in-process simulator makes from now on, to look for in what was written."""
    from fleetclt.sim.auth_tokens import TokenStore
    made: list[str] = []
    create = TokenStore.create

    def recorded(self, *args, **kwargs):
        made.append(create(self, *args, **kwargs))
        return made[-1]
    monkeypatch.setattr(TokenStore, "create", recorded)
    return made


START_TIMEOUT = 30


def start_sim(*args, env=None):
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "sim", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    with gevent.Timeout(START_TIMEOUT):
        line = process.stdout.readline()
        if not line.startswith("READY "):
            process.kill()
            pytest.fail(f"no READY line: {line!r} {process.stderr.read()}")
    return process, line


def stop_sim(process):
    process.send_signal(signal.SIGTERM)
    with gevent.Timeout(START_TIMEOUT):
        code = process.wait()
    stderr = process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return code, stderr


def inline_fleet(sim, password_env):
    """A Fleet over a SimFleet's inventory, in the test's own hub, its password read from `password_env`."""
    inventory = parse_inventory(yaml.safe_dump(sim.inventory({"env": password_env})), "sim.yaml")
    return Fleet(inventory, hub="inline")


FOUR_VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")


def four_versions(monkeypatch, password_env, base_address, **create):
    """Four simulated hosts, one of each version from 24.10 to 26.0; admin's password in `password_env`."""
    monkeypatch.setenv(password_env, "pw")
    return SimFleet.create(4, base_address=base_address, users={"admin": "pw"}, versions=FOUR_VERSIONS, **create)


def fill_disk(path) -> None:
    """From now on every write to the file at `path` fails with ENOSPC, as on a full disk: it becomes a
    symlink to /dev/full, which open(O_APPEND) follows. Its content is kept aside for fix_disk()."""
    os.replace(path, f"{path}.kept")
    os.symlink("/dev/full", path)


def fix_disk(path) -> None:
    """The disk has room again: the file is back, as fill_disk() found it."""
    os.unlink(path)
    os.replace(f"{path}.kept", path)
