"""The benchmark's quick mode runs end to end and reports every contender and figure.

It must work, not be fast: nothing here checks a time or a ratio, only that each
figure is there, and that fleetclt logged in once per host and met no EBUSY.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import FIGURES
from bench.run import WORKERS

ROOT = Path(__file__).resolve().parent.parent
# The CLI connects inside every round; the thread contender too, so its connect CPU is not apart.
NOT_MEASURED = {"cli": {"connect_login_s", "connect_cpu_us_per_host"}, "threads": {"connect_cpu_us_per_host"}}


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_quick_bench_reports_every_contender_and_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((tmp_path / "results.json").read_text())
    assert document["machine"]["cores"] >= 1 and document["machine"]["python"]
    (size, by_contender), = document["results"].items()
    assert set(by_contender) == set(WORKERS)
    for name, figures in by_contender.items():
        for key in set(FIGURES) - NOT_MEASURED.get(name, set()):
            assert isinstance(figures.get(key), (int, float)), (name, key)
    ours = by_contender["fleetclt"]
    assert ours["runs"] == by_contender["asyncio"]["runs"] == 2 and by_contender["cli"]["runs"] == 1
    assert ours["logins_per_host_max"] == 1 and ours["ebusy"] == 0
    assert ours["round_failures"] == 0 and ours["job_failures"] == 0
    assert set(document["ratios"][size]) == set(WORKERS) - {"fleetclt"}
    assert (tmp_path / "results.md").read_text().startswith("Machine:")
