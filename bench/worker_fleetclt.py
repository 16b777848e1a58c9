"""Contenders 1 and 1b: fleetclt through its Python API, persistent sessions.

Connect + login every host through `Fleet.run(HostSession.connect)`, then
`Fleet.call("system.info")` rounds, a saturation phase with several rounds in
flight at once, and (when asked) a job fan-out. No monkey patching: the library
does not need it. forks = N so that no host waits for a free slot. With
spec["hub"] == "thread" the Fleet runs its hub in a thread of its own and this
process calls it as plain Python does (saturation from OS threads), so the
figures price the hand-over between threads.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gevent

import fleetclt
from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, Rounds, emit, load_spec, raise_nofile, rss_kib

try:
    from fleetclt import Fleet, FleetResult, HostSession, Status
except ImportError:  # a --baseline checkout from before the public API (its __init__ exported nothing)
    from fleetclt.fleet import Fleet  # type: ignore[no-redef]
    from fleetclt.results import FleetResult, Status  # type: ignore[no-redef]
    from fleetclt.session import HostSession  # type: ignore[no-redef]

THROTTLED: list[int] = []  # EBUSY refusals (status `throttled`) seen in any fan-out


def tally(result: FleetResult) -> int:
    """Note the host refused for the auth budget; returns how many hosts were not ok."""
    THROTTLED.append(len(result.by_status().get(Status.THROTTLED, [])))
    return len(result.failed)


def connect_all(fleet: Fleet, count: int) -> dict[str, Any]:
    rss0, cpu0 = rss_kib(), time.process_time()
    started = time.perf_counter()
    failures = tally(fleet.run(HostSession.connect, hosts="all"))
    elapsed = time.perf_counter() - started
    return {"connect_login_s": round(elapsed, 3), "connect_failures": failures,
            "connect_cpu_us_per_host": round((time.process_time() - cpu0) / count * 1e6),
            "rss_kib_per_session": round((rss_kib() - rss0) / count, 1)}


def one_round(fleet: Fleet) -> int:
    return tally(fleet.call(CALL_METHOD, hosts="all"))


def saturation(fleet: Fleet, count: int, depth: int, rounds: int, threads: bool) -> float:
    """Calls per second with `depth` fan-out rounds in flight at once (greenlets, or OS threads)."""
    def driver() -> None:
        for _ in range(rounds):
            one_round(fleet)
    started = time.perf_counter()
    if threads:
        with ThreadPoolExecutor(depth) as pool:
            for done in [pool.submit(driver) for _ in range(depth)]:
                done.result()
    else:
        gevent.joinall([gevent.spawn(driver) for _ in range(depth)], raise_error=True)
    return round(count * depth * rounds / (time.perf_counter() - started), 1)


def make_fleet(spec: dict[str, Any]) -> Fleet:
    """A hub thread when asked for; else this process is a gevent program, so 'auto' picks inline
    (the hub exists first, as in the CLI), and a --baseline checkout that predates hub= works too."""
    options: dict[str, Any] = {}
    if spec.get("hub") == "thread":
        options["hub"] = "thread"
    else:
        gevent.get_hub()
    return Fleet.from_inventory(spec["inventory"], forks=spec["count"], max_connecting=spec["max_connecting"],
                                **options)


def job_fanout(fleet: Fleet) -> dict[str, Any]:
    started = time.perf_counter()
    failures = tally(fleet.call(JOB_METHOD, *JOB_PARAMS, hosts="all", job=True))
    return {"job_fanout_s": round(time.perf_counter() - started, 3), "job_failures": failures}


def auth_budget(fleet: Fleet, names: list[str]) -> dict[str, Any]:
    logins = [fleet[name].stats.logins for name in names]
    return {"logins_per_host_max": max(logins), "logins_per_host_mean": round(sum(logins) / len(logins), 3),
            "ebusy": sum(THROTTLED)}


def main() -> None:
    spec = load_spec()
    count = spec["count"]
    raise_nofile(count + 500)
    with make_fleet(spec) as fleet:
        out = connect_all(fleet, count)
        rounds = Rounds(count, spec["sim_pids"])
        rounds.run(lambda: one_round(fleet), spec["rounds"], spec["warmup"])
        out.update(rounds.figures())
        if spec.get("saturation_rounds"):
            out["calls_per_s"] = saturation(fleet, count, spec["depth"], spec["saturation_rounds"],
                                            spec.get("hub") == "thread")
        if spec.get("job"):
            out.update(job_fanout(fleet))
        out.update(auth_budget(fleet, fleet.select("all")))
    out["package"] = os.path.dirname(fleetclt.__file__)
    emit(out)


if __name__ == "__main__":
    main()
