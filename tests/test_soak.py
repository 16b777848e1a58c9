"""The short soak: 100 simulated hosts, drops and restarts, calls and jobs for ~12 s.

Runs scripts/soak.py in a child process (it starts its own simulator child), so
its hub, fds and RSS are its own. The long run is `python scripts/soak.py`.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "soak.py"


def test_short_soak_accounts_for_everything():
    done = subprocess.run([sys.executable, str(SCRIPT), "--short", "--json"], capture_output=True,
                          text=True, timeout=90)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["problems"] == [] and done.returncode == 0, done.stderr[-2000:]
    client, server = report["client"], report["server"]
    assert server["chaos"]["drops"] > 0 and server["chaos"]["restarts"] > 0, "the soak made no chaos"
    assert client["outcomes"]["call"].get("ok", 0) > 0.9 * client["sent"]["call"]
    assert client["jobs"].get("finished", 0) > 0 and client["sessions"]["jobs_reattached"] > 0
    assert server["counters"]["rate_limited"] == 0
    assert server["max_logins_per_60s"] <= 20
    assert client["fds"]["after_close"] <= client["fds"]["start"]
