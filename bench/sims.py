"""Simulated fleets for the benchmark: `fleetclt sim` processes and one merged inventory.

Why separate processes: the simulator and the client must not share a CPU
accounting or a hub. A fleet is split into shards, each on its own
127.x.0.0/16 range: one per core from `SPLIT_FROM` hosts on, because one
simulator process serving 1,000 hosts spends about as much CPU per fan-out
round as the round lasts (real hosts each have their own CPU, so a saturated
simulator would time itself, not the client); and never more than
`MAX_SHARD` hosts in one (a listener plus a session per host, 3 fds a host).
All shards share one password, passed by environment variable, so one
inventory covers them all.
"""
from __future__ import annotations

import os
import secrets
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MAX_SHARD = 5000
SPLIT_FROM = 500
PASSWORD_ENV = "FLEETCLT_BENCH_PASSWORD"
READY_TIMEOUT = 120.0


@dataclass
class SimFleetProcs:
    """Running simulator shards and the inventory that names every host once."""

    procs: list[subprocess.Popen[str]]
    inventory: Path
    hosts: list[dict[str, str]] = field(default_factory=list)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def bench_env() -> dict[str, str]:
    """The environment every bench process gets: the shared simulator password."""
    env = dict(os.environ)
    env.setdefault(PASSWORD_ENV, secrets.token_urlsafe(18))
    os.environ[PASSWORD_ENV] = env[PASSWORD_ENV]
    return env


def start_fleet(count: int, folder: Path, *, latency_ms: float, job_seconds: float,
                first_octet: int) -> SimFleetProcs:
    """Start the shards (`shard_sizes`) on 127.<first_octet + i>.0.1 and wait for READY."""
    folder.mkdir(parents=True, exist_ok=True)
    env = bench_env()
    sizes = shard_sizes(count, os.cpu_count() or 1)
    procs = [_spawn(size, folder / f"shard{i}.yaml", f"127.{first_octet + i}.0.1", latency_ms,
                    job_seconds, env, folder / f"shard{i}.log") for i, size in enumerate(sizes)]
    fleet = SimFleetProcs(procs, folder / "fleet.yaml")
    try:
        for proc in procs:
            _wait_ready(proc)
        fleet.hosts = _merge([folder / f"shard{i}.yaml" for i in range(len(sizes))], fleet.inventory)
    except BaseException:
        fleet.stop()
        raise
    return fleet


def shard_sizes(count: int, cores: int) -> list[int]:
    """Hosts per simulator: one per core from SPLIT_FROM hosts, at most MAX_SHARD each, as even as can be."""
    shards = max(-(-count // MAX_SHARD), min(cores, count // SPLIT_FROM), 1)
    return [count // shards + (index < count % shards) for index in range(shards)]


def _spawn(count: int, inventory: Path, listen: str, latency_ms: float, job_seconds: float,
           env: dict[str, str], log: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "fleetclt.cli", "sim", "--count", str(count), "--port", "0",
               "--listen", listen, "--latency-ms", str(latency_ms), "--job-seconds", str(job_seconds),
               "--password-env", PASSWORD_ENV, "--write-inventory", str(inventory)]
    with open(log, "w") as stderr:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("READY"):
        raise RuntimeError(f"simulator did not start within {READY_TIMEOUT:g} s: {line!r}")


def _merge(shards: list[Path], target: Path) -> list[dict[str, str]]:
    """One inventory over every shard; host names get the shard number so they stay unique."""
    hosts: dict[str, dict[str, str]] = {}
    for index, path in enumerate(shards):
        for name, spec in yaml.safe_load(path.read_text())["hosts"].items():
            hosts[f"s{index}-{name}"] = {"uri": spec["uri"]}
    document = {"defaults": {"username": "admin", "password": {"env": PASSWORD_ENV}}, "hosts": hosts}
    target.write_text(yaml.safe_dump(document, sort_keys=False))
    return [{"name": name, "uri": spec["uri"]} for name, spec in hosts.items()]
