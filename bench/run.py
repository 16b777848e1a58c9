"""`python -m bench`: run every contender against fresh simulated fleets; write JSON + markdown.

Why a process per contender and a fresh fleet each time: CPU and RSS are then
the contender's alone, a gevent hub never meets an asyncio loop, and each
contender starts with the server's rate limiter (20 logins per host and source
address per 60 s) and fleetclt's auth budget untouched, so the login figures
say what the contender itself used.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.sims import bench_env, shard_sizes, start_fleet

BIG_ONLY = ("fleetclt", "asyncio")  # contenders run at 10,000 hosts
BIG = 10000
THREAD_ROUNDS = 12  # warm-up + rounds + job run stay under the server's 20 logins/min
THREAD_HUB = "fleetclt-thread"  # the API worker with Fleet(hub="thread"), driven as plain Python
WORKERS = {"fleetclt": "bench.worker_fleetclt", THREAD_HUB: "bench.worker_fleetclt", "cli": "bench.worker_cli",
           "cli-agent": "bench.worker_cli_agent",
           "threads": "bench.worker_threads", "asyncio": "bench.worker_asyncio"}
BASELINE = "baseline"  # the fleetclt API worker on another checkout (--baseline), to judge a change
# Persistent-session contenders alternate on one fleet, --repeat times: on a shared
# 2-core machine one run each swung CPU per call by +-20 %; the median of runs
# taken in turn against the same servers does not.
ALTERNATING = ("fleetclt", THREAD_HUB, "asyncio", BASELINE)
REPO = Path(__file__).resolve().parent.parent
WORST_OF = {"logins_per_host_max", "ebusy", "connect_failures", "round_failures", "job_failures"}  # not medians
# The other checkout's fleetclt under this checkout's API worker: fleetclt is imported
# first from the baseline folder, then the worker module from here.
BASELINE_LAUNCH = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); import fleetclt; del sys.path[0]; "
                   "runpy.run_module('bench.worker_fleetclt', run_name='__main__', alter_sys=True)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 hosts, few rounds: under a minute")
    parser.add_argument("--sizes", type=lambda s: [int(x) for x in s.split(",")],
                        help="fleet sizes (default 100,1000,10000)")
    parser.add_argument("--contenders", type=lambda s: s.split(","), default=list(WORKERS),
                        help=f"subset of {','.join(WORKERS)}")
    parser.add_argument("--rounds", type=int, help="measured rounds (default 30; quick 4)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="injected per-reply latency (default 20)")
    parser.add_argument("--job-seconds", type=float, help="simulated job duration (default 2; quick 0.5)")
    parser.add_argument("--job-hosts", type=int, help="size that runs the job fan-out (default 1000)")
    parser.add_argument("--repeat", type=int, help="runs of each persistent-session contender, taken in "
                        "turn against one fleet; figures are medians (default 3; quick 2)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for results.json/.md")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also run the API contender on the fleetclt package found in DIR "
                             "(e.g. a `git worktree` of the previous commit): before/after in one run")
    args = parser.parse_args(argv)
    quick = args.quick
    args.sizes = args.sizes or ([50] if quick else [100, 1000, BIG])
    args.rounds = args.rounds or (4 if quick else 30)
    args.warmup = 1 if quick else 2
    args.repeat = args.repeat or (2 if quick else 3)
    args.job_seconds = args.job_seconds if args.job_seconds is not None else (0.5 if quick else 2.0)
    args.job_hosts = args.job_hosts or (args.sizes[-1] if quick else 1000)
    if args.baseline:
        args.contenders = [*args.contenders, BASELINE]
    return args


def worker_spec(args: argparse.Namespace, name: str, size: int, fleet: Any) -> dict[str, Any]:
    rounds = min(args.rounds, THREAD_ROUNDS) if name == "threads" else args.rounds
    return {"count": size, "inventory": str(fleet.inventory), "hosts": fleet.hosts, "rounds": rounds,
            "warmup": args.warmup if name != "cli" else 0, "max_connecting": 200, "depth": 4,
            "saturation_rounds": 3 if args.quick else 5, "job": size == args.job_hosts,
            "sim_pids": [proc.pid for proc in fleet.procs], "hub": "thread" if name == THREAD_HUB else None}


def run_worker(args: argparse.Namespace, name: str, size: int, fleet: Any, state: Path) -> dict[str, Any]:
    """One contender process against a running fleet, with its own auth-budget state dir."""
    env = bench_env()
    env["FLEETCLT_STATE_DIR"] = str(state)
    spec = state.with_name(state.name + ".spec.json")
    spec.write_text(json.dumps(worker_spec(args, name, size, fleet)))
    if name == BASELINE:
        command = [sys.executable, "-c", BASELINE_LAUNCH, str(args.baseline.resolve()), str(spec)]
    else:
        command = [sys.executable, "-m", WORKERS[name], str(spec)]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"{name} at {size} hosts failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(f"{name:>9} N={size:<6} done in {time.monotonic() - started:5.1f} s", file=sys.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def with_fleet(args: argparse.Namespace, size: int, folder: Path, octet: int, names: list[str],
               repeat: int) -> dict[str, dict[str, Any]]:
    """Start a fleet, run `names` in turn `repeat` times against it, stop it; medians per contender.

    The server's limiter allows 20 logins per host and minute: every run logs in
    once per host, so (contenders x repeat) stays well under it.
    """
    fleet = start_fleet(size, folder, latency_ms=args.latency_ms, job_seconds=args.job_seconds, first_octet=octet)
    try:
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
        for turn in range(repeat):
            for name in names:
                runs[name].append(run_worker(args, name, size, fleet, folder / f"state-{name}-{turn}"))
    finally:
        fleet.stop()
    return {name: median_figures(taken) for name, taken in runs.items()}


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each numeric figure's median over the runs (the worst for counts of logins and failures)."""
    merged: dict[str, Any] = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            values = [run[key] for run in runs]
            merged[key] = max(values) if key in WORST_OF else statistics.median(values)
    merged["runs"] = len(runs)
    return merged


def run_all(args: argparse.Namespace, on_size: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
    """Every size; `on_size` gets the results so far after each one."""
    results: dict[str, dict[str, Any]] = {}
    octet = 20
    with tempfile.TemporaryDirectory(prefix="fleetclt-bench-") as scratch:
        for size in args.sizes:
            names = [n for n in args.contenders if size < BIG or n in BIG_ONLY]
            together = [n for n in names if n in ALTERNATING]
            groups = [(together, args.repeat)] if together else []
            groups += [([n], 1) for n in names if n not in ALTERNATING]
            by_name: dict[str, Any] = {}
            for group, repeat in groups:
                folder = Path(scratch) / f"{'-'.join(group)}-{size}"
                by_name.update(with_fleet(args, size, folder, octet, group, repeat))
                octet += len(shard_sizes(size, os.cpu_count() or 1))
            results[str(size)] = {n: by_name[n] for n in names}
            on_size(results)
    return results


def document(args: argparse.Namespace, results: dict[str, Any]) -> dict[str, Any]:
    return {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": f"{platform.system()} {platform.machine()}"},
        "config": {"quick": args.quick, "sizes": args.sizes, "rounds": args.rounds, "warmup": args.warmup,
                   "cli_rounds": min(args.rounds, 3), "thread_rounds": min(args.rounds, THREAD_ROUNDS),
                   "latency_ms": args.latency_ms, "job_seconds": args.job_seconds, "job_hosts": args.job_hosts,
                   "call": "system.info", "job": "service.control RESTART nfs", "command": " ".join(sys.argv),
                   "baseline": str(args.baseline) if args.baseline else None, "repeat": args.repeat},
        "results": results,
        "ratios": {size: report.ratios(by) for size, by in results.items()},
        "targets": report.targets(results, args.job_seconds),
    }


def write(args: argparse.Namespace, results: dict[str, Any]) -> str:
    """Write JSON and markdown for the sizes measured so far (a later size may still fail)."""
    doc = document(args, results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(doc, indent=2) + "\n")
    table = report.markdown(doc)
    (args.out / "results.md").write_text(table)
    return table


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(write(args, run_all(args, lambda so_far: write(args, so_far))))
    return 0
