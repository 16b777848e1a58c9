"""`fleetclt demo`, the README's first command, end to end in a subprocess."""
from __future__ import annotations

import re
import sys

from gevent import subprocess


def test_demo_runs_as_designed_and_leaves_no_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fleetclt.cli", "demo", "--count", "12", "--job-seconds", "0.5"],
                            capture_output=True, text=True, timeout=120,
                            env={"FLEETCLT_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "11 ok, 1 auth_failed, 1 unreachable" in out, "12 simulated hosts and one that is gone"
    assert out.startswith("Simulated fleet: 13 hosts in a temporary inventory, removed at the end "), \
        "no file name: the file is gone by the time anyone reads this"
    assert re.search(r"sim011 +failed +job 1 \(pool.dataset.lock\) failed", out)
    assert re.search(r"sim012 +auth_failed", out) and re.search(r"nas-gone +unreachable", out)
    assert "Logins over the three fan-outs: 11, one per reachable host." in out
    assert "The demo ran as designed." in out and "Traceback" not in result.stderr
    leftover = subprocess.run(["pgrep", "-f", "fleetclt.cli sim --count 12"], capture_output=True, text=True)
    assert leftover.stdout == ""
