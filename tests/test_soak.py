"""The short soaks: 100 simulated hosts with drops, restarts (1 s down), calls and jobs for ~12 s; and churn.

Runs scripts/soak.py in a child process (it starts its own simulator child), so
its hub, fds and RSS are its own. The long runs are `python scripts/soak.py` and
`python scripts/soak.py --churn` (15 s of 3 cuts a second on 10 hosts).
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
    assert server["counters"]["bad_gateway"] > 0, "restarts kept middlewared down: nginx answered 502"
    assert client["outcomes"]["call"].get("ok", 0) > 0.9 * client["sent"]["call"]
    assert client["jobs"].get("finished", 0) > 0 and client["sessions"]["jobs_reattached"] > 0
    assert server["counters"]["rate_limited"] == 0
    assert server["max_logins_per_60s"] <= 20
    assert client["fds"]["after_close"] <= client["fds"]["start"]


def test_short_churn_from_plain_python_keeps_calls_ok_and_spends_one_boot_id_per_login():
    """10 hosts, 3 connections cut a second, a round every 0.2 s from a script with no gevent of its own."""
    done = subprocess.run([sys.executable, str(SCRIPT), "--churn", "--short", "--json"], capture_output=True,
                          text=True, timeout=90)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["problems"] == [] and done.returncode == 0, (report, done.stderr[-2000:])
    client, server = report["client"], report["server"]
    assert server["chaos"]["drops"] >= 8, "the churn cut connections"
    assert client["hub"] == "thread" and not client["gevent_in_main_thread"]
    assert client["ok_ratio"] >= 0.99 and client["slowest_call"] <= 7.0
    assert server["unauthenticated_calls_per_login"] == 2.0, "system.boot_id and the login, nothing else"
    assert server["more_boot_ids_than_logins"] == []
