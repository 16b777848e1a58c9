"""Measurements shared by every contender worker: CPU, RSS, percentiles, the result line.

CPU is `time.process_time()` (every thread of the process), RSS is read from
/proc/self/status. A worker prints exactly one JSON object on its last stdout line.
"""
from __future__ import annotations

import json
import math
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

JOB_METHOD, JOB_PARAMS = "service.control", ["RESTART", "nfs"]
CALL_METHOD = "system.info"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(key: str = "VmRSS") -> int:
    """Resident set (or, with key='VmHWM', its peak) of this process in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile; with few rounds the p99 is the slowest round."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def raise_nofile(needed: int) -> None:
    """Soft open-file limit up to the hard one when `needed` descriptors do not fit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of another process (a simulator), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class Rounds:
    """Round times and the CPU they cost, ours and the simulators' (`sim_pids`).

    The simulators' CPU over the measured rounds says whether the fleet kept up:
    near one core per simulator process, round times measure the fixture, not
    the client.
    """

    calls_per_round: int
    sim_pids: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    cpu: float = 0.0
    sim_cpu: float = 0.0
    failures: int = 0

    def run(self, one_round: Callable[[], int], rounds: int, warmup: int) -> None:
        """`one_round` returns how many calls failed."""
        for _ in range(warmup):
            one_round()
        self.begin()
        for _ in range(rounds):
            started = time.perf_counter()
            self.failures += one_round()
            self.times.append(time.perf_counter() - started)
        self.end()

    def begin(self) -> None:
        self.cpu, self.sim_cpu = -time.process_time(), -self._sims_cpu()

    def end(self) -> None:
        self.cpu += time.process_time()
        self.sim_cpu += self._sims_cpu()

    def _sims_cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.sim_pids)

    def figures(self) -> dict[str, Any]:
        calls, elapsed = self.calls_per_round * len(self.times), sum(self.times)
        return {
            "round_ms_median": round(percentile(self.times, 0.5) * 1000, 2),
            "round_ms_p99": round(percentile(self.times, 0.99) * 1000, 2),
            "cpu_us_per_call": round(self.cpu / calls * 1e6, 1),
            "sim_cpu_cores": round(self.sim_cpu / elapsed, 2),
            "calls_per_s": round(calls / elapsed, 1),
            "rounds": len(self.times),
            "round_failures": self.failures,
        }


def emit(result: dict[str, Any]) -> None:
    """The worker's answer: one JSON line, last on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def load_spec() -> dict[str, Any]:
    """The worker's task: a JSON file named by the only argument (at 10,000 hosts the
    JSON is ~1 MB, past the kernel's 128 KiB limit on one command-line argument)."""
    with open(sys.argv[1], encoding="utf-8") as spec:
        return json.load(spec)
