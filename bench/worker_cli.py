"""Contender 2: fleetclt through its CLI, end to end, one process per fan-out.

Each round is `python -m fleetclt.cli -i INV call --hosts all -o json system.info`:
process start, inventory, connect, login, call, JSON output. Its CPU is the
child's (RUSAGE_CHILDREN), so connect and login are part of every round and
there is no separate connect time. A one-host run first serves as warm-up and
as the RSS baseline. Every run logs in to every host once, through the shared
auth budget (burst 5 per host), so the rounds are kept to a few.
"""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from typing import Any

from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, emit, load_spec, percentile

MAX_ROUNDS = 3  # 1 warm-up + 3 rounds + 1 job run = 5 logins a host: the auth burst


def run_cli(spec: dict[str, Any], hosts: str, forks: int, *args: str) -> tuple[float, dict[str, Any]]:
    """One `fleetclt call`, connecting as many hosts at once as the API contender does."""
    command = [sys.executable, "-m", "fleetclt.cli", "-i", spec["inventory"], "call", "--hosts", hosts,
               "--forks", str(forks), "--max-connecting", str(spec["max_connecting"]), "-o", "json", *args]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 2):
        raise RuntimeError(f"fleetclt CLI failed ({done.returncode}): {done.stderr[-500:]}")
    return elapsed, json.loads(done.stdout)


def not_ok(document: dict[str, Any]) -> tuple[int, int]:
    """(hosts not ok, hosts throttled) of one CLI JSON document."""
    summary = document["summary"]
    return sum(v for k, v in summary.items() if k != "ok"), summary.get("throttled", 0)


def main() -> None:
    spec = load_spec()
    count = spec["count"]
    first = spec["hosts"][0]["name"]
    run_cli(spec, first, 1, CALL_METHOD)
    baseline_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    times, failures, ebusy = [], 0, 0
    for _ in range(min(spec["rounds"], MAX_ROUNDS)):
        elapsed, document = run_cli(spec, "all", count, CALL_METHOD)
        times.append(elapsed)
        bad, throttled = not_ok(document)
        failures, ebusy = failures + bad, ebusy + throttled
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
    calls = count * len(times)
    out: dict[str, Any] = {
        "connect_login_s": None,
        "rss_kib_per_session": round((cpu1.ru_maxrss - baseline_kib) / max(1, count - 1), 1),
        "round_ms_median": round(percentile(times, 0.5) * 1000, 2),
        "round_ms_p99": round(percentile(times, 0.99) * 1000, 2),
        "cpu_us_per_call": round(cpu / calls * 1e6, 1), "calls_per_s": round(calls / sum(times), 1),
        "rounds": len(times), "round_failures": failures}
    runs = len(times)
    if spec.get("job"):
        elapsed, document = run_cli(spec, "all", count, "-j", JOB_METHOD, *JOB_PARAMS)
        bad, throttled = not_ok(document)
        out.update(job_fanout_s=round(elapsed, 3), job_failures=bad)
        ebusy, runs = ebusy + throttled, runs + 1
    out.update(logins_per_host_max=runs + 1, logins_per_host_mean=round(runs + 1 / count, 3),
               ebusy=ebusy)
    emit(out)


if __name__ == "__main__":
    main()
