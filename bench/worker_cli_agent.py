"""Contender 2b: fleetclt through its CLI with a running agent (docs/agent.md).

`fleetclt agent start`, then rounds of `python -m fleetclt.cli -i INV call
--hosts all -o json system.info` that go through it (FLEETCLT_AGENT=require):
the first run connects and logs in every host in the agent, the others reuse
its sessions. The round figure is the median of runs 2..N, to set beside
`fleetclt --version` (the CLI's start-up) and the API contender's round: the
issue's target is a round through the agent within 1.5x of the two added.
CPU is the CLI processes' (RUSAGE_CHILDREN) plus the agent's (/proc/PID/stat).
RSS per session is the agent's VmRSS growth from before the first run (no
session) to after the last (every session open and idle), over the hosts:
the same figure as the API contender's growth over its connect.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, cpu_seconds, emit, load_spec, percentile
from bench.worker_cli import not_ok

VERSION_RUNS = 5


def fleetclt(*args: str, agent: str = "require") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fleetclt.cli", *args], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "FLEETCLT_AGENT": agent})


@dataclass
class Run:
    elapsed: float
    failures: int  # hosts not ok
    ebusy: int     # hosts throttled
    waits: int     # "waiting N s for HOST's login budget" lines on the command's stderr


def call_all(spec: dict[str, Any], *call: str) -> Run:
    """One `fleetclt call --hosts all` through the agent (FLEETCLT_AGENT=require: never directly)."""
    started = time.perf_counter()
    done = fleetclt("-i", spec["inventory"], "call", "--hosts", "all", "--forks", str(spec["count"]),
                    "--max-connecting", str(spec["max_connecting"]), "-o", "json", *(call or (CALL_METHOD,)))
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise RuntimeError(f"fleetclt call via the agent failed ({done.returncode}): {done.stderr[-500:]}")
    failures, ebusy = not_ok(json.loads(done.stdout))
    return Run(elapsed, failures, ebusy, done.stderr.count("login budget"))


def agent_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for the agent {pid}")


def startup_s() -> float:
    """`fleetclt --version`, median of a few: the CLI's start-up, which no agent can save."""
    times = []
    for _ in range(VERSION_RUNS):
        started = time.perf_counter()
        fleetclt("--version")
        times.append(time.perf_counter() - started)
    return percentile(times, 0.5)


def main() -> None:
    spec = load_spec()
    count, inventory = spec["count"], spec["inventory"]
    started = fleetclt("-i", inventory, "agent", "start", "--idle", "10m", agent="off")
    if started.returncode != 0:
        raise RuntimeError(f"agent start failed: {started.stderr[-500:]}")
    pid = int(started.stdout.split()[1])
    try:
        rss0, agent_cpu0 = agent_rss_kib(pid), cpu_seconds(pid)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        runs = [call_all(spec) for _ in range(spec["rounds"] + 1)]
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        agent_cpu = cpu_seconds(pid) - agent_cpu0
        rss1 = agent_rss_kib(pid)
        job = call_all(spec, "-j", JOB_METHOD, *JOB_PARAMS) if spec.get("job") else None
        status = json.loads(fleetclt("-i", inventory, "agent", "status", "-o", "json").stdout)
    finally:
        fleetclt("-i", inventory, "agent", "stop")
    times = [run.elapsed for run in runs]
    measured = times[1:]  # the first run logs every host in
    cli_cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    calls = count * len(times)
    failures = sum(run.failures for run in runs)
    out = {
        "connect_login_s": round(times[0], 3),
        "round_ms_median": round(percentile(measured, 0.5) * 1000, 2),
        "round_ms_p99": round(percentile(measured, 0.99) * 1000, 2),
        "startup_ms": round(startup_s() * 1000, 2),
        "cpu_us_per_call": round((cli_cpu + agent_cpu) / calls * 1e6, 1),
        "calls_per_s": round(count * len(measured) / sum(measured), 1),
        "rss_kib_per_session": round((rss1 - rss0) / count, 1),
        "rounds": len(measured), "round_failures": failures,
        # every host answered, so each logged in at least once: the most any one did is at most this
        "logins_per_host_max": status["logins"] - count + 1 if not failures else status["logins"],
        "logins_per_host_mean": round(status["logins"] / count, 3),
        "ebusy": sum(run.ebusy for run in runs), "budget_waits": sum(run.waits for run in runs),
    }
    if job is not None:
        out.update(job_fanout_s=round(job.elapsed, 3), job_failures=job.failures)
    emit(out)


if __name__ == "__main__":
    main()
