"""The file-transfer worker: fleetclt's download and upload against 10 hosts, then curl's, side by side.

Every figure is bytes moved over wall time, with all hosts at once. fleetclt's time
is the whole public call (`fleetclt.download` / `fleetclt.upload`: the RPC that
starts the job, the HTTP transfer, the wait for the job's end); curl's covers the
transfers only (the URLs and tokens are fetched before its clock starts, through
fleetclt sessions), as a script would run `curl` once the URL is known. RSS is this
process's, sampled every 20 ms while the upload runs.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import gevent
from gevent import subprocess

from bench.measure import emit, load_spec, rss_kib
from fleetclt import Fleet, HostSession, download, upload
from fleetclt.protocol.endpoint import Endpoint

CURL = "/usr/bin/curl"
MIB = 1024 * 1024


def main() -> None:
    spec = load_spec()
    work = Path(spec["work"])
    image = Path(spec["image"])
    with Fleet.from_inventory(spec["inventory"], forks=len(spec["hosts"])) as fleet:
        fleet.run(HostSession.connect)
        uris = {name: fleet.inventory.hosts[name].uri for name in fleet.select("all")}
        result: dict[str, Any] = {"hosts": len(uris), "upload_bytes": image.stat().st_size,
                                  "download_bytes": spec["debug_bytes"]}
        result.update(measure_downloads(fleet, uris, work, spec["debug_bytes"]))
        result.update(measure_uploads(fleet, uris, work, image))
    emit(result)


def measure_downloads(fleet: Fleet, uris: dict[str, str], work: Path, size: int) -> dict[str, Any]:
    total = size * len(uris)
    started = time.perf_counter()
    done = download(fleet, "system.debug", dest=work / "fleetclt-dl")
    ours = time.perf_counter() - started
    assert not done.failed, {name: str(host.error) for name, host in done.failed.items()}
    tickets = fleet.call("core.download", "system.debug", [], "debug.tgz", False)
    commands = [[CURL, "-sS", "--fail", "-o", str(work / f"curl-dl-{name}"), http(uris[name], host.result[1])]
                for name, host in tickets.items()]
    theirs = run_curls(commands)
    for name in uris:  # the files arrived whole, and the jobs' pipes are drained
        assert (work / f"curl-dl-{name}").stat().st_size == size
        os.unlink(work / f"curl-dl-{name}")
    return {"download_fleetclt_mib_s": round(total / ours / MIB, 1),
            "download_curl_mib_s": round(total / theirs / MIB, 1),
            "download_fleetclt_s": round(ours, 3), "download_curl_s": round(theirs, 3)}


def measure_uploads(fleet: Fleet, uris: dict[str, str], work: Path, image: Path) -> dict[str, Any]:
    total = image.stat().st_size * len(uris)
    baseline = rss_kib()
    peak = [baseline]

    def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss_kib())
            gevent.sleep(0.02)
    sampler = gevent.spawn(sample)
    started = time.perf_counter()
    done = upload(fleet, "update.file", {}, files=image)
    ours = time.perf_counter() - started
    sampler.kill()
    assert not done.failed, {name: str(host.error) for name, host in done.failed.items()}
    tokens = fleet.call("auth.generate_token", 300, {}, True, True)
    commands = []
    for name, host in tokens.items():
        header = work / f"auth-{name}"  # the token is read from a 0600 file, never put on a command line
        header.touch(mode=0o600)
        header.write_text(f"Authorization: Token {host.result}\n")
        commands.append([CURL, "-sS", "--fail", "-o", "/dev/null", "-H", f"@{header}",
                         "-F", 'data={"method": "update.file", "params": [{}]};type=application/json',
                         "-F", f"file=@{image};type=application/octet-stream", http(uris[name], "/_upload")])
    theirs = run_curls(commands)
    return {"upload_fleetclt_mib_s": round(total / ours / MIB, 1),
            "upload_curl_mib_s": round(total / theirs / MIB, 1),
            "upload_fleetclt_s": round(ours, 3), "upload_curl_s": round(theirs, 3),
            "upload_rss_growth_mib": round((peak[0] - baseline) / 1024, 1), "rss_mib": round(baseline / 1024, 1)}


def http(uri: str, path: str) -> str:
    endpoint = Endpoint.parse(uri)
    return f"http://{endpoint.netloc}{path}"


def run_curls(commands: list[list[str]]) -> float:
    """Run every curl at once; the wall time until the last one ended."""
    started = time.perf_counter()
    processes = [subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for command in commands]
    for process in processes:
        _, err = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"curl failed ({process.returncode}): {err.decode()[-500:]}")
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
