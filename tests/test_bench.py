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

from bench.report import FIGURES, targets
from bench.run import WORKERS
from bench.sims import MAX_SHARD, shard_sizes
from bench.worker_files import CURL

ROOT = Path(__file__).resolve().parent.parent
# The CLI connects inside every round; the thread contender too, so its connect CPU is not apart.
# Simulator CPU is taken around the rounds of the persistent-session contenders only.
NOT_MEASURED = {"cli": {"connect_login_s", "connect_cpu_us_per_host", "sim_cpu_cores"},
                "cli-agent": {"connect_cpu_us_per_host", "sim_cpu_cores"},
                "threads": {"connect_cpu_us_per_host", "sim_cpu_cores"}}


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
    via_agent = by_contender["cli-agent"]
    assert via_agent["logins_per_host_max"] == 1 and via_agent["ebusy"] == 0 and via_agent["budget_waits"] == 0
    assert via_agent["round_failures"] == 0 and via_agent["rounds"] == 4 and via_agent["startup_ms"] > 0
    assert any(check["target"].startswith("CLI via agent round") for check in document["targets"])
    assert (tmp_path / "results.md").read_text().startswith("Machine:")


@pytest.mark.parametrize("count, cores, expected", [
    (100, 2, [100]), (999, 2, [999]), (1000, 2, [500, 500]), (1001, 2, [501, 500]),
    (10000, 2, [5000, 5000]), (10001, 2, [3334, 3334, 3333]), (1000, 1, [1000]), (1500, 8, [500, 500, 500]),
])
def test_fleets_are_split_one_simulator_per_core_and_never_past_the_shard_limit(count, cores, expected):
    sizes = shard_sizes(count, cores)
    assert sizes == expected and sum(sizes) == count and max(sizes) <= MAX_SHARD


def test_the_rss_target_is_checked_from_a_thousand_hosts_and_reads_its_figure():
    ours = {"rss_kib_per_session": 41.0, "logins_per_host_max": 1, "ebusy": 0, "connect_login_s": 0.5}
    checks = targets({"100": {"fleetclt": ours}, "1000": {"fleetclt": ours}}, job_seconds=2.0)
    rss = [(c["size"], c["met"]) for c in checks if c["target"].startswith("RSS")]
    assert rss == [("1000", False)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_file_bench_runs_and_reports_fleetclt_beside_curl(tmp_path: Path) -> None:
    if not Path(CURL).exists():
        pytest.skip(f"{CURL} is not installed")
    done = subprocess.run([sys.executable, "-m", "bench.files", "--hosts", "2", "--upload-mib", "1",
                           "--download-mib", "1", "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    document = json.loads((tmp_path / "files.json").read_text())
    figures = document["results"]
    assert figures["hosts"] == 2 and figures["upload_bytes"] > 1024 * 1024
    for key in ("download_fleetclt_mib_s", "download_curl_mib_s", "upload_fleetclt_mib_s", "upload_curl_mib_s",
                "upload_rss_growth_mib"):
        assert isinstance(figures[key], (int, float)) and figures[key] >= 0, key
    assert [check["target"].split()[0] for check in document["targets"]] == ["download", "upload", "RSS"]
    assert (tmp_path / "files.md").read_text().startswith("File transfers to 2 simulated hosts")


def test_the_agent_targets_set_its_round_against_start_up_plus_the_api_round():
    ours = {"rss_kib_per_session": 40.0, "round_ms_median": 100.0, "logins_per_host_max": 1, "ebusy": 0,
            "connect_login_s": 0.5}
    agent = {"round_ms_median": 600.0, "startup_ms": 300.0, "rss_kib_per_session": 45.0}
    checks = {c["target"]: c for c in targets({"1000": {"fleetclt": ours, "cli-agent": agent}}, job_seconds=2.0)}
    round_check = checks["CLI via agent round <= 1.5x (start-up + API round)"]
    assert round_check["met"] and round_check["value"].startswith("1.5 (600 ms / (300 + 100 ms))")
    assert not checks["agent RSS per idle session <= 1.1x the API's"]["met"], "45 / 40 KiB is 1.125x"
