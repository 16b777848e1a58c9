"""A Fleet driven from plain Python: a script with no gevent, time.sleep between rounds, a thread pool.

The child script (plain_script.py) makes the Fleet in its main thread, subscribes
and gets every host's event with no other call, then calls from a
ThreadPoolExecutor in rounds separated by time.sleep longer than an idle timeout
the simulator enforces, with every connection dropped before one round; every
host must answer ok in every round with one login more than the drop asked for.

The idle timeout is no middlewared behaviour: it models a reverse proxy or load
balancer in front of the host (nginx's proxy_read_timeout, a cloud load
balancer's idle timeout) that closes a silent TCP connection. The simulator
runs in a process of its own (plain_sim.py), so the script's process holds no
gevent hub but the Fleet's.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from gevent import subprocess

ROOT = Path(__file__).resolve().parents[2]
IDLE = 0.5  # seconds: keepalives must beat it while the script sleeps 0.8 s
HOSTS = 12
TIMEOUT = 60


@pytest.fixture
def plain_sim(tmp_path):
    env = {**os.environ, "PLAIN_SIM_PW": "plain-pw"}
    inventory = tmp_path / "inventory.yaml"
    process = subprocess.Popen([sys.executable, "-m", "tests.fleet.plain_sim", str(HOSTS), "127.6.0.1",
                                str(IDLE), str(inventory)], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "READY"
        yield process, inventory, env
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=TIMEOUT)
        process.stdout.close()


def test_plain_python_script_keeps_sessions_alive_across_sleeps_threads_and_drops(plain_sim):
    sim, inventory, env = plain_sim
    done = subprocess.run([sys.executable, str(ROOT / "tests/fleet/plain_script.py"), str(inventory),
                           str(sim.pid), str(IDLE)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip() == "OK"
