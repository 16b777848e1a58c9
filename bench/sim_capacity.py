"""How many simulated hosts one simulator process holds, and what one fan-out round costs.

Starts `fleetclt sim --count N` in a subprocess, opens one authenticated fleetclt
session per host from this process, then runs `system.info` on every host.
Reports the simulator's RSS (listening only, then with N sessions), connect+login
time and the round time. Usage: python bench/sim_capacity.py [N] [ROUNDS]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import gevent
from gevent import subprocess
from gevent.pool import Pool

from fleetclt.client.session import Credentials, HostSession
from fleetclt.inventory.load import load_inventory
from fleetclt.local.rlimit import ensure_open_files


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main(count: int, rounds: int) -> dict[str, float]:
    ensure_open_files(count * 2)
    folder = Path(tempfile.mkdtemp())
    inventory_path = folder / "sim.yaml"
    sim = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "sim", "--count", str(count), "--port", "0",
                            "--listen", "127.2.0.1", "--write-inventory", str(inventory_path)],
                           stdout=subprocess.PIPE, text=True)
    try:
        with gevent.Timeout(120):
            assert sim.stdout.readline().startswith("READY")
        idle_rss = rss_mb(sim.pid)
        sessions = [HostSession(h.name, h.uri, Credentials(h.username, h.password))
                    for h in load_inventory(inventory_path).hosts.values()]
        started = time.perf_counter()
        list(Pool(200).imap_unordered(HostSession.connect, sessions))
        connect_s = time.perf_counter() - started
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            infos = list(Pool(count).imap_unordered(lambda s: s.call("system.info"), sessions))
            times.append(time.perf_counter() - started)
            assert len({i["hostname"] for i in infos}) == count
        result = {"hosts": count, "sim_rss_listening_mb": round(idle_rss, 1),
                  "sim_rss_with_sessions_mb": round(rss_mb(sim.pid), 1),
                  "connect_and_login_all_s": round(connect_s, 3),
                  "system_info_round_ms_median": round(statistics.median(times) * 1000, 1),
                  "system_info_round_ms_first": round(times[0] * 1000, 1)}
        result["kb_per_session"] = round((result["sim_rss_with_sessions_mb"] - idle_rss) * 1024 / count, 1)
        for session in sessions:
            session.close()
        return result
    finally:
        sim.terminate()
        sim.wait()


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:]]
    print(json.dumps(main(*(arguments + [1000, 10][len(arguments):])), indent=2))
    os._exit(0)
