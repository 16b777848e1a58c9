"""Helpers the tests share (kept out of conftest.py, which pytest does not mean to be imported)."""
from __future__ import annotations

import os
import signal
import sys

import gevent
import pytest
from gevent import subprocess


def wait_until(predicate, timeout=10.0, step=0.005):
    """Wait for a condition another greenlet or the server brings about (bounded)."""
    with gevent.Timeout(timeout, AssertionError(f"condition not met within {timeout} s")):
        while not predicate():
            gevent.sleep(step)


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
