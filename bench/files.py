"""`python -m bench.files`: file transfers to 10 simulated hosts, fleetclt beside curl, and RSS while pushing.

Writes `files.json` and `files.md` into --out. The image is a simulated update
image (sim/api_upload.py: the simulator checks its sha256) of --upload-mib; each
host's system.debug writes --download-mib. Hosts are split over one simulator
process per core, as in the main bench: the simulator parses every byte in
Python, so it is the slower end of every transfer here, for fleetclt and curl
alike, and the ratio says whether fleetclt keeps up with curl against the same
servers. The issue's targets: throughput within 70 % of curl, RSS within 20 MiB
while pushing a 2 GiB image to 10 hosts (`--upload-mib 2048`).
"""
from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from bench.sims import PASSWORD_ENV, bench_env
from fleetclt.sim.api_upload import write_update_image

REPO = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
THROUGHPUT_TARGET, RSS_TARGET_MIB = 0.7, 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.files", description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10, help="simulated hosts (default 10)")
    parser.add_argument("--upload-mib", type=float, default=64, help="image size in MiB (default 64; target 2048)")
    parser.add_argument("--download-mib", type=float, default=64, help="debug file size in MiB (default 64)")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="folder for files.json/.md")
    return parser.parse_args(argv)


def start_sims(hosts: int, folder: Path, debug_bytes: int) -> tuple[list[subprocess.Popen[str]], Path]:
    """One simulator per core (at most one per host), and one inventory naming every host."""
    shards = max(1, min(os.cpu_count() or 1, hosts))
    sizes = [hosts // shards + (i < hosts % shards) for i in range(shards)]
    env = bench_env()
    procs = [subprocess.Popen([sys.executable, "-m", "bench.files_sim", str(size), f"127.{60 + i}.0.1",
                               str(debug_bytes), str(folder / f"shard{i}.yaml")],
                              stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
             for i, size in enumerate(sizes)]
    for proc in procs:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        if not ready or not proc.stdout.readline().startswith("READY"):
            stop(procs)
            raise RuntimeError("a file-bench simulator did not start")
    merged: dict[str, Any] = {}
    for i in range(shards):
        for name, spec in yaml.safe_load((folder / f"shard{i}.yaml").read_text())["hosts"].items():
            merged[f"s{i}-{name}"] = {"uri": spec["uri"]}
    inventory = folder / "fleet.yaml"
    inventory.write_text(yaml.safe_dump({"defaults": {"username": "admin", "password": {"env": PASSWORD_ENV}},
                                         "hosts": merged}))
    return procs, inventory


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.send_signal(signal.SIGTERM)
    for proc in procs:
        proc.wait(timeout=30)


def measure(args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    image = scratch / "TrueNAS-99.0.0.update"
    write_update_image(image, "99.0.0", int(args.upload_mib * MIB))
    debug_bytes = int(args.download_mib * MIB)
    procs, inventory = start_sims(args.hosts, scratch, debug_bytes)
    try:
        hosts = list(yaml.safe_load(inventory.read_text())["hosts"])
        spec = scratch / "spec.json"
        spec.write_text(json.dumps({"inventory": str(inventory), "hosts": hosts, "image": str(image),
                                    "work": str(scratch), "debug_bytes": debug_bytes}))
        done = subprocess.run([sys.executable, "-m", "bench.worker_files", str(spec)], capture_output=True,
                              text=True, env=bench_env(), cwd=REPO, timeout=3600)
    finally:
        stop(procs)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the file worker failed ({done.returncode}):\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def targets(figures: dict[str, Any]) -> list[dict[str, Any]]:
    checks = []
    for way in ("download", "upload"):
        ratio = figures[f"{way}_fleetclt_mib_s"] / figures[f"{way}_curl_mib_s"]
        checks.append({"target": f"{way} throughput >= {THROUGHPUT_TARGET:.0%} of curl's",
                       "value": round(ratio, 2), "met": ratio >= THROUGHPUT_TARGET})
    growth = figures["upload_rss_growth_mib"]
    checks.append({"target": f"RSS growth while uploading <= {RSS_TARGET_MIB:g} MiB", "value": growth,
                   "met": growth <= RSS_TARGET_MIB})
    return checks


def markdown(document: dict[str, Any]) -> str:
    f, config = document["results"], document["config"]
    lines = [f"File transfers to {f['hosts']} simulated hosts over loopback, all at once "
             f"(image {config['upload_mib']:g} MiB, debug file {config['download_mib']:g} MiB per host):", "",
             "| transfer | fleetclt MiB/s | curl MiB/s | fleetclt / curl |", "|---|---|---|---|"]
    for way in ("download", "upload"):
        ours, theirs = f[f"{way}_fleetclt_mib_s"], f[f"{way}_curl_mib_s"]
        lines.append(f"| {way} | {ours} | {theirs} | {ours / theirs:.2f} |")
    lines += ["", f"fleetclt RSS {f['rss_mib']} MiB before the upload; growth while uploading: "
              f"{f['upload_rss_growth_mib']} MiB.", "", "| target | value | met |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['value']} | {'yes' if c['met'] else 'no'} |" for c in document["targets"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fleetclt-files-bench-") as scratch:
        figures = measure(args, Path(scratch))
    document = {"config": {"hosts": args.hosts, "upload_mib": args.upload_mib, "download_mib": args.download_mib,
                           "cores": os.cpu_count(), "command": " ".join(sys.argv)},
                "results": figures, "targets": targets(figures)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "files.json").write_text(json.dumps(document, indent=2) + "\n")
    table = markdown(document)
    (args.out / "files.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
