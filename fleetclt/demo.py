"""`fleetclt demo`: boot a simulated fleet in this process and drive it for real.

Layer: front end; imports fleetclt.sim, fleetclt.session, fleetclt.secret.

Nothing is mocked: the hosts are real websocket servers on 127.1.0.x, each
session logs in once and stays open, calls and jobs go over the wire.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, TextIO

import gevent
from gevent.pool import Pool

from .errors import FleetError
from .secret import Secret
from .session import Credentials, HostSession
from .sim.clock import SimClock
from .sim.config import DEFAULT_USER, Faults
from .sim.fleet import SimFleet, new_password

VERSIONS = ("25.10.1", "25.10.1", "26.0.0", "25.04.2", "24.10.2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=6, help="simulated hosts (default 6)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="length of the demo job (default 3)")


def run(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    password = new_password()
    fleet = SimFleet.create(args.count, users={DEFAULT_USER: password}, clock=SimClock(),
                            faults=Faults(job_duration=args.job_seconds), versions=VERSIONS)
    with fleet:
        first, last = fleet.hosts[0], fleet.hosts[-1]
        print(f"Simulated fleet: {len(fleet.hosts)} TrueNAS hosts on {first.address} .. {last.address}"
              f" (versions {', '.join(sorted(set(VERSIONS)))})\n", file=out)
        sessions = [HostSession(h.name, f"ws://{h.address}:{h.port}", Credentials(DEFAULT_USER, Secret(password)))
                    for h in fleet.hosts]
        try:
            ok = _show_info(sessions, out) and _run_job(sessions, out)
        finally:
            for session in sessions:
                session.close()
        logins = sum(h.counters.logins_ok for h in fleet.hosts)
        print(f"\nLogins: {logins} for {len(fleet.hosts)} hosts: one per host, each session stayed open.", file=out)
    return 0 if ok else 1


def _fan_out(sessions: list[HostSession], action: Callable[[HostSession], Any]) -> dict[str, Any]:
    """Run `action` on every session at once; an exception is that host's outcome."""
    def attempt(session: HostSession) -> tuple[str, Any, float]:
        started = time.monotonic()
        try:
            return session.name, action(session), time.monotonic() - started
        except FleetError as exc:
            return session.name, exc, time.monotonic() - started
    return {name: (value, took) for name, value, took in Pool(100).imap_unordered(attempt, sessions)}


def _show_info(sessions: list[HostSession], out: TextIO) -> bool:
    print("$ system.info on every host (connect + login + call)", file=out)
    results = _fan_out(sessions, lambda s: (s.call("system.info"), s.dialect))
    print(f"  {'HOST':8} {'VERSION':9} {'API':12} {'SERIAL':11} {'MEMORY':7} TIME", file=out)
    for name in sorted(results):
        value, took = results[name]
        if isinstance(value, Exception):
            print(f"  {name:8} ERROR {value}", file=out)
            continue
        info, dialect = value
        api = "JSON-RPC" if dialect == "jsonrpc" else "legacy DDP"
        print(f"  {name:8} {info['version']:9} {api:12} {info['system_serial']:11} "
              f"{info['physmem'] // 2**30:>4} GB {took * 1000:5.0f} ms", file=out)
    return not any(isinstance(v, Exception) for v, _ in results.values())


def _run_job(sessions: list[HostSession], out: TextIO) -> bool:
    print("\n$ pool.dataset.lock tank/secure, as a job on every host, in parallel", file=out)
    progress: dict[str, int] = {}
    watcher = gevent.spawn(_report_progress, progress, len(sessions), out)

    def lock(session: HostSession) -> Any:
        return session.call("pool.dataset.lock", "tank/secure", job=True,
                            on_progress=lambda job: progress.__setitem__(session.name, job["progress"]["percent"]))
    results = _fan_out(sessions, lock)
    watcher.kill()
    for name in sorted(results):
        value, took = results[name]
        outcome = f"FAILED {value}" if isinstance(value, Exception) else f"SUCCESS result={value}"
        print(f"  {name:8} {outcome}  {took:.1f} s", file=out)
    return not any(isinstance(v, Exception) for v, _ in results.values())


def _report_progress(progress: dict[str, int], total: int, out: TextIO) -> None:
    while True:
        gevent.sleep(1.0)
        if progress:
            mean = sum(progress.values()) / total
            print(f"  ... {len(progress)}/{total} jobs reporting, mean {mean:.0f}%", file=out, flush=True)
