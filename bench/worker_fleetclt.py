"""Contender 1: fleetclt through its Python API, persistent sessions.

Layer: bench worker (own process); imports fleetclt.fleet and bench.measure.

Connect + login every host through `Fleet.run(HostSession.connect)`, then
`Fleet.call("system.info")` rounds, a saturation phase with several rounds in
flight at once, and (when asked) a job fan-out. No monkey patching: the library
does not need it. forks = N so that no host waits for a free slot.
"""
from __future__ import annotations

import os
import time
from typing import Any

import gevent

import fleetclt
from bench.measure import CALL_METHOD, JOB_METHOD, JOB_PARAMS, Rounds, emit, load_spec, raise_nofile, rss_kib
from fleetclt.client.session import HostSession
from fleetclt.fleet.fleet import Fleet
from fleetclt.fleet.results import FleetResult, Status

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


def saturation(fleet: Fleet, count: int, depth: int, rounds: int) -> float:
    """Calls per second with `depth` fan-out rounds in flight at once."""
    started = time.perf_counter()
    drivers = [gevent.spawn(lambda: [one_round(fleet) for _ in range(rounds)]) for _ in range(depth)]
    gevent.joinall(drivers, raise_error=True)
    return round(count * depth * rounds / (time.perf_counter() - started), 1)


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
    with Fleet.from_inventory(spec["inventory"], forks=count, max_connecting=spec["max_connecting"]) as fleet:
        out = connect_all(fleet, count)
        rounds = Rounds(count, spec["sim_pids"])
        rounds.run(lambda: one_round(fleet), spec["rounds"], spec["warmup"])
        out.update(rounds.figures())
        if spec.get("saturation_rounds"):
            out["calls_per_s"] = saturation(fleet, count, spec["depth"], spec["saturation_rounds"])
        if spec.get("job"):
            out.update(job_fanout(fleet))
        out.update(auth_budget(fleet, fleet.select("all")))
    out["package"] = os.path.dirname(fleetclt.__file__)
    emit(out)


if __name__ == "__main__":
    main()
