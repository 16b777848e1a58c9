"""Ctrl-C during `call -o jsonl -j`: exit 130, and no row claims that a host whose job goes on is unreachable.

A real `fleetclt` subprocess against simulated hosts; SIGINT once every host's
job is running. The hosts hold their jobs (jobs_released cleared), so the
jobs are still running when the signal lands, whatever the machine's speed.
"""
from __future__ import annotations

import os
import signal
import sys

import yaml
from gevent import subprocess

from fleetclt.sim import Faults, SimClock
from fleetclt.sim.fleet import SimFleet
from tests.helpers import wait_until


def running_jobs(sim):
    return [job for host in sim.hosts for job in host.engine.jobs.values()
            if job.method == "pool.dataset.lock" and job.state == "RUNNING"]


def test_ctrl_c_prints_no_made_up_rows_and_exits_130(tmp_path):
    sim = SimFleet.create(3, base_address="127.14.20.1", users={"admin": "pw"}, clock=SimClock(speed=1),
                          faults=Faults(job_duration=30))
    with sim:
        for host in sim.hosts:
            host.jobs_released.clear()
        inventory = tmp_path / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(sim.inventory({"env": "INTERRUPT_PW"})))
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), "call", "--hosts", "all", "-o", "jsonl",
             "-j", "pool.dataset.lock", "tank/secure"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "INTERRUPT_PW": "pw", "FLEETCLT_STATE_DIR": str(tmp_path / "state")})
        try:
            wait_until(lambda: len(running_jobs(sim)) == 3, timeout=60)
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
        assert process.returncode == 130
        assert out == "", "no host finished, so no row: certainly none saying 'unreachable'"
        assert err.strip() == ("fleetclt: interrupted with 3 of 3 hosts unfinished; "
                               "a job already started goes on on its host")
        assert len(running_jobs(sim)) == 3, "the jobs go on on their hosts"
        for host in sim.hosts:
            host.jobs_released.set()
