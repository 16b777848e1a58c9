"""Contender 3: the naive script, a thread per host, websocket-client, log in on every round.

This is how scripts built on the official client usually look: for each host a
thread opens a connection, calls `auth.login_ex`, makes the call and closes;
the next round does it all again. Defaults as such scripts leave them: the
standard json module, uuid4 ids, websocket-client's own UTF-8 check.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from typing import Any

import websocket

from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, emit, load_spec, percentile, raise_nofile, rss_kib
from bench.sims import PASSWORD_ENV


class Tally:
    """What the threads of one round report: login times, failures, logins, EBUSY refusals."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logged_in: list[float] = []
        self.failures = self.logins = self.ebusy = 0

    def add(self, **counts: int) -> None:
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)


def call(ws: websocket.WebSocket, method: str, params: list[Any]) -> Any:
    call_id = str(uuid.uuid4())
    ws.send(json.dumps({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params}))
    while True:
        message = json.loads(ws.recv())
        if message.get("id") == call_id:
            if "error" in message:
                raise RuntimeError(message["error"])
            return message["result"]


def one_host(uri: str, method: str, params: list[Any], tally: Tally, started: float, job: bool) -> None:
    try:
        ws = websocket.create_connection(uri, timeout=60)
        try:
            call(ws, "auth.login_ex", [{"mechanism": "PASSWORD_PLAIN", "username": "admin",
                                        "password": os.environ[PASSWORD_ENV]}])
            tally.add(logins=1)
            with tally.lock:
                tally.logged_in.append(time.perf_counter() - started)
            if job:
                call(ws, "core.set_options", [{"legacy_jobs": False}])
            call(ws, method, params)
        finally:
            ws.close()
    except Exception as exc:  # one host's failure is a counted outcome, as in fleetclt
        tally.add(failures=1, ebusy=int("EBUSY" in str(exc)))


def one_round(uris: list[str], tally: Tally, method: str = CALL_METHOD, params: list[Any] | None = None,
              job: bool = False) -> float:
    started = time.perf_counter()
    threads = [threading.Thread(target=one_host, args=(uri, method, params or [], tally, started, job))
               for uri in uris]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def main() -> None:
    spec = load_spec()
    os.environ["no_proxy"] = "*"  # loopback only, whatever the environment says
    uris = [host["uri"] for host in spec["hosts"]]
    count = len(uris)
    raise_nofile(count + 500)
    threading.stack_size(256 * 1024)
    tally, rss0 = Tally(), rss_kib()
    for _ in range(spec["warmup"]):
        one_round(uris, tally)
    connect_times, times = [], []
    cpu0 = time.process_time()
    for _ in range(spec["rounds"]):
        tally.logged_in = []
        times.append(one_round(uris, tally))
        connect_times.append(max(tally.logged_in, default=float("nan")))
    cpu = time.process_time() - cpu0
    calls = count * len(times)
    out = {"connect_login_s": round(percentile(connect_times, 0.5), 3),
           "rss_kib_per_session": round((rss_kib("VmHWM") - rss0) / count, 1),
           "round_ms_median": round(percentile(times, 0.5) * 1000, 2),
           "round_ms_p99": round(percentile(times, 0.99) * 1000, 2),
           "cpu_us_per_call": round(cpu / calls * 1e6, 1), "calls_per_s": round(calls / sum(times), 1),
           "rounds": len(times), "round_failures": tally.failures}
    if spec.get("job"):
        job_tally = Tally()
        out["job_fanout_s"] = round(one_round(uris, job_tally, JOB_METHOD, JOB_PARAMS, job=True), 3)
        out["job_failures"] = job_tally.failures
        tally.add(logins=job_tally.logins, ebusy=job_tally.ebusy)
    rounds_run = spec["warmup"] + spec["rounds"] + bool(spec.get("job"))
    out.update(logins_per_host_max=rounds_run, logins_per_host_mean=round(tally.logins / count, 3),
               ebusy=tally.ebusy)
    emit(out)


if __name__ == "__main__":
    main()
