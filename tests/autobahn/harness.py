"""Drive the Autobahn fuzzing server with fleetclt's own transport (issue 7, doc 2.10).

    python -m tests.autobahn.harness                # sections 1-7 and 10 (247 cases)
    python -m tests.autobahn.harness --cases 1.*,5.* --json

The suite is frozen on Python 2.7, so it runs as a child process: pyenv's
python2.7 installs `autobahntestsuite` from PyPI into `.autobahn/site` (once,
about a minute), `wstest -m fuzzingserver` listens on 127.0.0.1 with webport 0,
and this process walks /getCaseCount, /runCase (echoing every message through
`fleetclt.client.transport.WebSocket` with `allow_binary`) and /updateReports, then
scores `index.json` the way wsproto did: behavior in {OK, NON-STRICT,
INFORMATIONAL} and behaviorClose in {OK, INFORMATIONAL} pass, anything else fails.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import gevent
from gevent import socket

from fleetclt.client.tls import TLSPolicy
from fleetclt.client.transport import open_websocket
from fleetclt.errors import SessionError
from fleetclt.protocol.endpoint import Endpoint
from tests.faultproxy import free_port

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("FLEETCLT_AUTOBAHN_DIR", ROOT / ".autobahn"))
VERSION = "25.10.1"
SECTIONS = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
AGENT = "fleetclt"
PASSING, PASSING_CLOSE = {"OK", "NON-STRICT", "INFORMATIONAL"}, {"OK", "INFORMATIONAL"}
CASE_TIMEOUT = 20.0


class Unavailable(Exception):
    """python2.7 or the suite cannot be had here: the caller skips, loudly."""


@dataclass
class Score:
    """Counts by behavior, and the cases that failed with their verdicts."""

    cases: int = 0
    behaviors: Counter = field(default_factory=Counter)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> str:
        counts = ", ".join(f"{n} {b}" for b, n in sorted(self.behaviors.items()))
        return f"{self.cases} cases in {self.seconds:.1f} s: {counts}; {len(self.failed)} failed"


def find_python2() -> str:
    """A python2.7 that runs (pyenv's shim exists even where 2.7 is not selected)."""
    candidates = [shutil.which("python2.7") or ""]
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7")))
    for path in filter(None, candidates):
        if subprocess.run([path, "-c", "import sys; assert sys.version_info[:2] == (2, 7)"],
                          capture_output=True).returncode == 0:
            return path
    raise Unavailable("no working python2.7 (autobahntestsuite runs only on 2.7; pyenv's 2.7 is how this runs)")


def install_suite(python2: str) -> Path:
    """Install autobahntestsuite into the cache once; later runs reuse it."""
    site = CACHE / "site"
    if (site / "autobahntestsuite" / "wstest.py").exists():
        return site
    site.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([python2, "-m", "pip", "install", "--disable-pip-version-check", "--target",
                           str(site), f"autobahntestsuite=={VERSION}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"pip could not install autobahntestsuite: {done.stderr.strip()[-400:]}")
    return site


def start_server(python2: str, site: Path, work: Path, cases: list[str]) -> tuple[subprocess.Popen, int]:
    """The fuzzing server on 127.0.0.1 (webport 0: no web UI port is opened)."""
    port = free_port()
    spec = {"url": f"ws://127.0.0.1:{port}", "webport": 0, "outdir": str(work / "reports"),
            "cases": cases, "exclude-cases": [], "exclude-agent-cases": {}}
    (work / "spec.json").write_text(json.dumps(spec))
    with open(work / "wstest.log", "w") as log:
        server = subprocess.Popen([python2, str(Path(__file__).with_name("wstest_py2.py")), str(site),
                                   "-m", "fuzzingserver", "-s", str(work / "spec.json")],
                                  cwd=work, stdout=log, stderr=subprocess.STDOUT)
    wait_for_port(server, port)
    return server, port


def wait_for_port(server: subprocess.Popen, port: int, timeout: float = 30.0) -> None:
    """Bounded: connect attempts until the server listens, it exits, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise Unavailable(f"wstest exited with {server.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            gevent.sleep(0.1)
    raise Unavailable(f"wstest did not listen on port {port} within {timeout:g} s")


def endpoint(port: int, target: str) -> Endpoint:
    return Endpoint("ws", "127.0.0.1", port, target)


def get_case_count(port: int) -> int:
    ws = open_websocket(AGENT, endpoint(port, "/getCaseCount"), TLSPolicy(), 10)
    try:
        return int(ws.receive())
    finally:
        ws.close()


def run_case(port: int, number: int) -> None:
    """Echo every message until the server ends the case; protocol errors end it as well."""
    ws = open_websocket(AGENT, endpoint(port, f"/runCase?case={number}&agent={AGENT}"), TLSPolicy(), 10)
    ws.allow_binary = True
    try:
        with gevent.Timeout(CASE_TIMEOUT, False):
            while True:
                message = ws.receive()
                (ws.send_binary if isinstance(message, bytes) else ws.send)(message)
    except SessionError:
        pass  # ConnectionLost after the close handshake, ProtocolError after our close code
    finally:
        ws.close()


def update_reports(port: int) -> None:
    ws = open_websocket(AGENT, endpoint(port, f"/updateReports?agent={AGENT}"), TLSPolicy(), 30)
    try:
        with gevent.Timeout(60, False):
            ws.receive()
    except SessionError:
        pass
    finally:
        ws.close()


def score(report: Path) -> Score:
    results = json.loads(report.read_text())[AGENT]
    result = Score(cases=len(results))
    for case, verdict in results.items():
        behavior, closing = verdict["behavior"], verdict["behaviorClose"]
        result.behaviors[behavior] += 1
        if behavior not in PASSING or closing not in PASSING_CLOSE:
            result.failed[case] = (behavior, closing)
    return result


def run(cases: list[str] | None = None, work: Path | None = None) -> Score:
    """Install if needed, serve, drive every case, score; raises Unavailable to mean "skip"."""
    python2 = find_python2()
    site = install_suite(python2)
    work = work or CACHE / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    started = time.monotonic()
    server, port = start_server(python2, site, work, cases or SECTIONS)
    try:
        for number in range(1, get_case_count(port) + 1):
            run_case(port, number)
        update_reports(port)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = score(work / "reports" / "index.json")
    result.seconds = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default=",".join(SECTIONS), help="comma-separated case patterns")
    parser.add_argument("--json", action="store_true", help="print the score as JSON")
    args = parser.parse_args(argv)
    try:
        result = run(args.cases.split(","))
    except Unavailable as exc:
        print(f"autobahn: SKIPPED: {exc}", file=sys.stderr)
        return 0
    if args.json:
        print(json.dumps({"cases": result.cases, "behaviors": dict(result.behaviors),
                          "failed": result.failed, "seconds": round(result.seconds, 1)}))
    else:
        print(f"autobahn: {result.summary()}")
        for case, verdict in sorted(result.failed.items()):
            print(f"  FAILED {case}: {verdict[0]} / {verdict[1]}")
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
