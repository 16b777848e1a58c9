"""`fleetclt demo`, the README's first command, end to end in a subprocess."""
from __future__ import annotations

import sys

from gevent import subprocess


def test_demo_drives_a_mixed_fleet_and_logs_in_once_per_host():
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "demo", "--count", "5", "--job-seconds", "0.3"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.count("SUCCESS result=True") == 5
    assert "legacy DDP" in out and "25.04.2" in out and "JSON-RPC" in out
    assert "Logins: 5 for 5 hosts" in out
    assert "Traceback" not in result.stderr
