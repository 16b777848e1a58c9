"""`fleetclt demo`: a simulated fleet in a child process, driven for real through an inventory.

The simulator runs as `fleetclt sim` in its own process (so nothing is shared
with the client but sockets), writes an inventory, and this process fans out
over it like any user would. Three hosts are broken on purpose: one is gone
(nothing listens), one has a wrong password in the inventory, one fails its
jobs. The demo exits 0 when exactly those three fail as designed, and leaves no
process behind.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, TextIO

import gevent
import yaml
from gevent import subprocess

from ..errors import FleetError
from ..fleet.fleet import Fleet
from ..fleet.results import FleetResult, HostResult, Status
from ..inventory.load import load_inventory
from ..protocol.versions import parse_version

VERSIONS = ("25.10.1", "25.10.1", "26.0.0", "25.04.2", "24.10.2")
WRONG_PASSWORD_ENV = "FLEETCLT_DEMO_WRONG_PASSWORD"
START_TIMEOUT = 60.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=50, help="simulated hosts (default 50)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="length of the demo job (default 3)")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # looked up now: cli/stdout.py guards it for the run
    if args.count < 3:
        raise FleetError("the demo needs at least 3 hosts")
    with tempfile.TemporaryDirectory(prefix="fleetclt-demo-") as folder:
        path = Path(folder) / "inventory.yaml"
        failing = f"sim{args.count - 1:03d}"
        sim = _start_simulator(args, path, failing)
        try:
            return _show(path, _break_inventory(path, f"sim{args.count:03d}"), failing, out)
        finally:
            sim.terminate()
            sim.wait()


def _start_simulator(args: argparse.Namespace, path: Path, failing: str) -> subprocess.Popen:
    versions = [item for v in VERSIONS for item in ("--version", v)]
    command = [sys.executable, "-m", "fleetclt.cli", "sim", "--count", str(args.count), "--port", "0",
               "--listen", "127.1.0.1", "--job-seconds", str(args.job_seconds), "--failing", failing,
               "--write-inventory", str(path), *versions]
    sim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        with gevent.Timeout(START_TIMEOUT, FleetError("the simulator did not start within 60 s")):
            line = sim.stdout.readline()
        if not line.startswith("READY"):
            raise FleetError(f"the simulator did not start: {line.strip() or 'no output'}")
    except BaseException:
        sim.kill()
        sim.wait()
        raise
    return sim


def _break_inventory(path: Path, locked: str) -> dict[str, Status]:
    """Add a host that is gone, and give one host a wrong password."""
    data = yaml.safe_load(path.read_text())
    data["hosts"]["nas-gone"] = {"uri": "ws://127.1.255.254:9/api/current", "connect_timeout": 2}
    data["hosts"][locked]["password"] = {"env": WRONG_PASSWORD_ENV}
    os.environ[WRONG_PASSWORD_ENV] = "not-the-password"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return {"nas-gone": Status.UNREACHABLE, locked: Status.AUTH_FAILED}


def _show(path: Path, expected: dict[str, Status], failing: str, out: TextIO) -> int:
    inventory = load_inventory(path)
    print(f"Simulated fleet: {len(inventory.hosts)} hosts in a temporary inventory, removed at the end "
          f"(TrueNAS {', '.join(sorted(set(VERSIONS)))}; 3 broken on purpose)\n", file=out)
    with Fleet(inventory) as fleet:
        info = _step(out, "system.info on all hosts (connect + login + call)", lambda: fleet.call("system.info"))
        _versions(info, out)
        job = _step(out, "pool.dataset.lock tank/secure as a job on all hosts, live progress",
                    lambda: _job_with_progress(fleet, out))
        again = _step(out, "core.ping on all hosts again (sessions reused: no new login)",
                      lambda: fleet.call("core.ping"))
        logins = sum(fleet[name].stats.logins for name in inventory.hosts)
        print(f"Logins over the three fan-outs: {logins}, one per reachable host.", file=out)
    as_designed = all(_as_designed(result, expected) for result in (info, again))
    as_designed = as_designed and _as_designed(job, {**expected, failing: Status.FAILED})
    print("\nThe demo ran as designed." if as_designed else "\nUnexpected outcomes: see above.", file=out)
    return 0 if as_designed else 1


def _step(out: TextIO, title: str, action: Any) -> FleetResult:
    print(f"$ {title}", file=out, flush=True)
    started = time.monotonic()
    result: FleetResult = action()
    counts = ", ".join(f"{len(names)} {status.value}" for status, names in result.by_status().items())
    print(f"  {counts} in {time.monotonic() - started:.2f} s", file=out)
    for name, host in result.failed.items():
        print(f"  {name:12} {host.status.value:12} {_reason(host)}", file=out)
    print(file=out, flush=True)
    return result


def _reason(host: HostResult) -> str:
    return str(host.to_dict().get("error", {}).get("reason", ""))


def _versions(result: FleetResult, out: TextIO) -> None:
    """How many hosts run each version; 24.10's long form (TrueNAS-SCALE-24.10.2) read as the short one."""
    versions = Counter(str(host.result["version"]).removeprefix("TrueNAS-SCALE-") for host in result.ok.values())
    listing = ", ".join(f"{count} on {version}"
                        for version, count in sorted(versions.items(), key=lambda item: parse_version(item[0]) or ()))
    print(f"  versions: {listing}\n", file=out)


def _job_with_progress(fleet: Fleet, out: TextIO) -> FleetResult:
    progress: dict[str, int] = {}
    reporter = gevent.spawn(_report, progress, out)
    try:
        return fleet.call("pool.dataset.lock", "tank/secure", job=True,
                          on_progress=lambda host, job: progress.__setitem__(host, job["progress"]["percent"]))
    finally:
        reporter.kill()


def _report(progress: dict[str, int], out: TextIO) -> None:
    while True:
        gevent.sleep(1.0)
        if progress:
            values = list(progress.values())
            print(f"  ... {len(values)} jobs reporting, mean {sum(values) / len(values):.0f}%, "
                  f"lowest {min(values)}%", file=out, flush=True)


def _as_designed(result: FleetResult, expected: dict[str, Status]) -> bool:
    return all(host.status is expected.get(name, Status.OK) for name, host in result.items())
