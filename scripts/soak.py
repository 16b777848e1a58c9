#!/usr/bin/env python
"""Soak: many simulated hosts with random drops and restarts while calls and jobs flow.

    python scripts/soak.py                    # 1,000 hosts for 600 s
    python scripts/soak.py --hosts 1000 --duration 120
    python scripts/soak.py --short --json     # 100 hosts for 12 s (tests/test_soak.py)
    python scripts/soak.py --churn            # 10 hosts, 3 cuts a second, plain Python, 15 s
    python scripts/soak.py --churn --short    # the same for 4 s (tests/test_soak.py)

The simulator runs in a child process (this script with --serve) so the client's
RSS and fds are measured alone and each side gets a core. The child plays the
chaos (drop_connections / restart on random hosts, seeded) and samples every
host's login counter once a second, to report the most logins any host saw in
any 60 s window. The child also reports logins by mechanism: with the credential or with a
session token, per host, and which hosts needed the credential more often than
once plus once per restart. The parent drives a Fleet: rounds over random host samples,
each host doing a call (core.ping / system.info) or a job (service.control,
followed by events, re-attached by id after a drop) until the time is up.

Accounting: every host of every round has exactly one outcome (sent == sum of
statuses), and every job that got an id has an outcome (started == finished +
failed + unknown + timed out + lost). The report exits non-zero when anything
is unaccounted for, a host went over the login budget, or EBUSY was seen.

Churn mode is a script as a new user writes it: plain Python (no gevent of its
own, `time.sleep` between rounds, so the Fleet runs its hub in a thread) calling
`system.info` on every host every 0.2 s while the child cuts `--cuts` random
connections a second (optionally also restarts, and idle closes as a proxy
makes them). It reports the ok ratio, the slowest call, the statuses, and the
server's counts: unauthenticated calls per login and hosts that saw more
`system.boot_id` calls than logins. It fails when under 99 % are ok, a call took
longer than one budget interval plus a second, or the script overran by as much.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import subprocess  # noqa: E402  (the parent stays plain Python: gevent is imported where it runs)

PASSWORD = "soak-pw"
SERVER_LOGIN_BUDGET = 20      # TrueNAS: 20 unauthenticated calls per method per 60 s
BASE_ADDRESS = "127.9.0.1"
BUDGET_INTERVAL = 6.0         # one login per 6 s once the burst is spent (client/throttle.py)
CHURN_OK = 0.99


# -- child: the simulator and the chaos ----------------------------------------------------
def serve(args: argparse.Namespace) -> int:
    """Run the hosts, print their uris, make chaos until 'stop' arrives, print the counters."""
    import gevent

    from fleetclt.sim import Faults, SimClock
    from fleetclt.sim.fleet import SimFleet

    faults = Faults(job_duration=args.job_seconds, idle_timeout=args.idle_timeout)
    fleet = SimFleet.create(args.hosts, base_address=BASE_ADDRESS, users={"admin": PASSWORD},
                            clock=SimClock(speed=1), faults=faults)
    for host in fleet.hosts:  # nginx's idle close in front of every host, as on a real 25.10
        host.config = replace(host.config, nginx=True)
    fleet.start()
    print(json.dumps({h.name: h.uri for h in fleet.hosts}), flush=True)
    rng = random.Random(args.seed)
    chaos = {"drops": 0, "restarts": 0}
    restarted: collections.Counter[str] = collections.Counter()  # by host
    peaks: dict[str, int] = {}
    make_chaos = _cuts if args.churn else _chaos
    workers = [gevent.spawn(make_chaos, fleet, rng, args, chaos, restarted),
               gevent.spawn(_sample_logins, fleet, peaks)]
    gevent.get_hub().threadpool.apply(sys.stdin.readline)  # blocks a thread, not the hub
    gevent.killall(workers)
    totals: collections.Counter[str] = collections.Counter()
    for host in fleet.hosts:
        totals.update({k: v for k, v in vars(host.counters).items() if isinstance(v, int) and not k.startswith("peak")})
    boot_ids = {h.name: h.counters.calls_by_method["system.boot_id"] for h in fleet.hosts}
    print(json.dumps({"counters": dict(totals), "chaos": chaos, "boot_ids": sum(boot_ids.values()),
                      "more_boot_ids_than_logins": sorted(h.name for h in fleet.hosts
                                                          if boot_ids[h.name] > h.counters.logins_ok),
                      "max_logins_per_60s": max(peaks.values(), default=0),
                      "logins_by_mechanism": _logins_by_mechanism(fleet.hosts, restarted)}), flush=True)
    fleet.stop()
    return 0


def _logins_by_mechanism(hosts: list[Any], restarted: collections.Counter[str]) -> dict[str, Any]:
    """Logins with the credential (password, API key, two-factor, SCRAM) and with a session token,
    per host: the most and total of each, and the hosts that saw more credential logins than
    their first one and one per restart of their middleware (its tokens die with it), with how many."""
    primary = {h.name: h.counters.logins_password + h.counters.logins_api_key + h.counters.logins_two_factor
               + h.counters.logins_scram for h in hosts}
    token = {h.name: h.counters.logins_token for h in hosts}
    extra = {name: count - 1 - restarted[name] for name, count in primary.items() if count > 1 + restarted[name]}
    return {"primary": sum(primary.values()), "token": sum(token.values()),
            "max_primary_per_host": max(primary.values(), default=0),
            "max_token_per_host": max(token.values(), default=0),
            "hosts_with_extra_primary": len(extra), "extra_primary": sum(extra.values()),
            "extra_primary_by_host": dict(sorted(extra.items())[:20])}


def _cuts(fleet: Any, rng: random.Random, args: argparse.Namespace, chaos: dict[str, int],
          restarted: collections.Counter[str]) -> None:
    """Every second, `args.cuts` random connected hosts lose their connections at random moments; restarts too."""
    import gevent

    while True:
        second = time.monotonic()
        for offset in sorted(rng.random() for _ in range(args.cuts)):
            gevent.sleep(max(0.0, second + offset - time.monotonic()))
            connected = [host for host in fleet.hosts if host.connections]
            if connected:
                rng.choice(connected).drop_connections()
                chaos["drops"] += 1
        for host in fleet.hosts:
            if rng.random() < args.restart_rate:
                host.restart(args.restart_downtime)
                chaos["restarts"] += 1
                restarted[host.name] += 1
        gevent.sleep(max(0.0, second + 1.0 - time.monotonic()))


def _chaos(fleet: Any, rng: random.Random, args: argparse.Namespace, chaos: dict[str, int],
           restarted: collections.Counter[str]) -> None:
    """Each tick: every host is dropped with p=drop_rate*tick, restarted with p=restart_rate*tick."""
    import gevent

    tick = 0.25
    while True:
        gevent.sleep(tick)
        for host in fleet.hosts:
            roll = rng.random()
            if roll < args.restart_rate * tick:
                host.restart(args.restart_downtime)
                chaos["restarts"] += 1
                restarted[host.name] += 1
            elif roll < (args.restart_rate + args.drop_rate) * tick:
                host.drop_connections()
                chaos["drops"] += 1


def _sample_logins(fleet: Any, peaks: dict[str, int]) -> None:
    """Once a second: logins (ok, failed and refused) each host saw in the last 60 s."""
    import gevent

    history: dict[str, collections.deque] = {h.name: collections.deque() for h in fleet.hosts}
    while True:
        now = time.monotonic()
        for host in fleet.hosts:
            c = host.counters
            seen, window = c.logins_ok + c.logins_failed + c.rate_limited, history[host.name]
            window.append((now, seen))
            while window[0][0] < now - 60:
                window.popleft()
            peaks[host.name] = max(peaks.get(host.name, 0), seen - window[0][1])
        gevent.sleep(1.0)


# -- parent: the client ----------------------------------------------------------------------
class Ledger:
    """What the client sent and what came back, by kind and status."""

    def __init__(self) -> None:
        self.sent = collections.Counter()
        self.outcomes: dict[str, collections.Counter] = {"call": collections.Counter(),
                                                        "job": collections.Counter()}
        self.jobs = collections.Counter()  # started / finished / failed / unknown / timeout / lost
        self.rounds = 0

    def job_action(self, session: Any) -> Any:
        job = session.start_job("service.control", "RESTART", "nfs")  # its id with the boot id: restarts reuse ids
        self.jobs["started"] += 1
        try:
            result = session.wait_job(job, timeout=60)
        except BaseException as exc:
            self.jobs[_job_outcome(exc)] += 1
            raise
        self.jobs["finished"] += 1
        return result


def _job_outcome(exc: BaseException) -> str:
    from fleetclt.fleet.results import status_of
    return {"failed": "failed", "job_unknown": "unknown", "timeout": "timeout"}.get(
        status_of(exc).value, "lost")


def drive(fleet: Any, ledger: Ledger, names: list[str], rng: random.Random, until: float,
          sample: int, job_share: float) -> None:
    """Rounds over random samples until `until`; one greenlet of several."""
    while time.monotonic() < until:
        chosen = rng.sample(names, min(sample, len(names)))
        kinds = {name: "job" if rng.random() < job_share else "call" for name in chosen}
        method = rng.choice(["core.ping", "system.info"])

        def action(session: Any, kinds: dict[str, str] = kinds, method: str = method) -> Any:
            if kinds[session.name] == "job":
                return ledger.job_action(session)
            return session.call(method, timeout=10, retry_safe=True)
        result = fleet.run(action, hosts=chosen, deadline=120)
        for name, host_result in result.items():
            ledger.sent[kinds[name]] += 1
            ledger.outcomes[kinds[name]][host_result.status.value] += 1
        ledger.rounds += 1


def memory() -> dict[str, int]:
    """VmRSS and VmHWM (peak) of this process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"rss_kib": int(fields["VmRSS"].split()[0]), "peak_rss_kib": int(fields["VmHWM"].split()[0])}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def inventory(uris: dict[str, str]) -> Any:
    from fleetclt.inventory.load import parse_inventory

    os.environ["SOAK_PW"] = PASSWORD
    text = "defaults: {username: admin, password: {env: SOAK_PW}, timeout: 10, connect_timeout: 5}\nhosts:\n"
    text += "".join(f"  {name}: {{uri: '{uri}'}}\n" for name, uri in uris.items())
    return parse_inventory(text, "soak.yaml")


def run_client(args: argparse.Namespace, uris: dict[str, str]) -> dict[str, Any]:
    import gevent

    from fleetclt.fleet.fleet import Fleet

    ledger, rng = Ledger(), random.Random(args.seed + 1)
    started = time.monotonic()
    gevent.get_hub()  # its own fds (epoll, wake-up pipes) live on: counted before the start
    fds = {"start": open_fds(), "peak": 0}
    with Fleet.from_inventory(inventory(uris), forks=200, max_connecting=50) as fleet:
        until = started + args.duration
        drivers = [gevent.spawn(drive, fleet, ledger, list(uris), rng, until, args.sample, args.job_share)
                   for _ in range(args.drivers)]
        watcher = gevent.spawn(_watch_fds, fds)
        gevent.joinall(drivers, raise_error=True)
        watcher.kill()
        sessions = list(fleet._sessions.values())
        stats = collections.Counter()
        for session in sessions:
            stats.update(vars(session.stats))
        fds["open_before_close"] = open_fds()
    fds["after_close"] = _settled_fds(fds["start"])
    return {"seconds": round(time.monotonic() - started, 1), "rounds": ledger.rounds,
            "sent": dict(ledger.sent), "outcomes": {k: dict(v) for k, v in ledger.outcomes.items()},
            "jobs": dict(ledger.jobs), "sessions": dict(stats), "memory": memory(), "fds": fds}


def run_plain_churn(args: argparse.Namespace, uris: dict[str, str]) -> dict[str, Any]:
    """A plain-Python script: every host's system.info every `interval` s, time.sleep between rounds."""
    from fleetclt.fleet.fleet import Fleet

    statuses: collections.Counter[str] = collections.Counter()
    failures: list[str] = []  # the first few, word for word
    slowest, slowest_round, rounds = 0.0, 0.0, 0
    started = time.monotonic()
    with Fleet.from_inventory(inventory(uris)) as fleet:
        hub = fleet.hub_mode
        next_round = started
        while time.monotonic() < started + args.duration:
            begun = time.monotonic()
            for result in fleet.call("system.info").values():
                statuses[result.status.value] += 1
                slowest = max(slowest, result.elapsed)
                if not result.ok and len(failures) < 5:
                    failures.append(f"{time.monotonic() - started:.2f} s: {result.status.value}: {result.error}")
            slowest_round = max(slowest_round, time.monotonic() - begun)
            rounds += 1
            next_round += args.interval
            time.sleep(max(0.0, next_round - time.monotonic()))
        stats: collections.Counter[str] = collections.Counter()
        for name in fleet.select("all"):
            stats.update(vars(fleet[name].stats))
    calls = sum(statuses.values())
    return {"seconds": round(time.monotonic() - started, 2), "hub": hub, "rounds": rounds, "calls": calls,
            "statuses": dict(statuses), "failures": failures,
            "ok_ratio": round(statuses["ok"] / calls, 4) if calls else 0.0,
            "slowest_call": round(slowest, 2), "slowest_round": round(slowest_round, 2),
            "gevent_in_main_thread": _has_hub(), "sessions": dict(stats)}


def _has_hub() -> bool:
    """Whether this (the script's) thread ever got a gevent hub: a plain script must not."""
    from gevent._hub_local import get_hub_if_exists
    return get_hub_if_exists() is not None


def check_churn(report: dict[str, Any], duration: float) -> list[str]:
    client, server = report["client"], report["server"]
    problems = []
    slow = BUDGET_INTERVAL + 1.0
    if client["ok_ratio"] < CHURN_OK:
        problems.append(f"only {client['ok_ratio']:.2%} ok: {client['statuses']}")
    if client["slowest_call"] > slow:
        problems.append(f"a call took {client['slowest_call']} s (limit {slow:g} s)")
    if client["seconds"] > duration + slow:
        problems.append(f"the script took {client['seconds']} s for {duration:g} s of rounds")
    if client["hub"] != "thread" or client["gevent_in_main_thread"]:
        problems.append(f"not a plain-Python run: hub {client['hub']}")
    if server["more_boot_ids_than_logins"]:
        problems.append(f"more system.boot_id calls than logins on {server['more_boot_ids_than_logins']}")
    if server["counters"].get("rate_limited", 0):
        problems.append(f"EBUSY refusals: {server['counters']['rate_limited']}")
    if server["max_logins_per_60s"] > SERVER_LOGIN_BUDGET:
        problems.append(f"a host saw {server['max_logins_per_60s']} logins in 60 s (budget {SERVER_LOGIN_BUDGET})")
    return problems


def _settled_fds(target: int, timeout: float = 10.0) -> int:
    """Open fds once closing has run its course (killed greenlets close their sockets as they unwind)."""
    import gevent

    deadline = time.monotonic() + timeout
    while open_fds() > target and time.monotonic() < deadline:
        gevent.sleep(0.05)
    return open_fds()


def _watch_fds(fds: dict[str, int]) -> None:
    import gevent

    while True:
        fds["peak"] = max(fds["peak"], open_fds())
        gevent.sleep(1.0)


def check(report: dict[str, Any]) -> list[str]:
    """Everything that must hold; an empty list means the soak passed."""
    client, server = report["client"], report["server"]
    problems = []
    for kind in ("call", "job"):
        if client["sent"].get(kind, 0) != sum(client["outcomes"][kind].values()):
            problems.append(f"{kind}s unaccounted for: sent {client['sent'].get(kind, 0)}, "
                            f"outcomes {client['outcomes'][kind]}")
    jobs = dict(client["jobs"])
    started = jobs.pop("started", 0)
    if started != sum(jobs.values()):
        problems.append(f"jobs unaccounted for: started {started}, outcomes {jobs}")
    if server["counters"].get("rate_limited", 0):
        problems.append(f"EBUSY refusals: {server['counters']['rate_limited']}")
    if server["max_logins_per_60s"] > SERVER_LOGIN_BUDGET:
        problems.append(f"a host saw {server['max_logins_per_60s']} logins in 60 s (budget {SERVER_LOGIN_BUDGET})")
    if client["fds"]["after_close"] > client["fds"]["start"]:
        problems.append(f"fds left open: {client['fds']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        return serve(args)
    state = tempfile.TemporaryDirectory(prefix="fleetclt-soak-")
    os.environ["FLEETCLT_STATE_DIR"] = state.name  # auth budgets of this run only
    child = subprocess.Popen([sys.executable, __file__, "--serve", *_child_args(args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        uris = json.loads(child.stdout.readline())
        client = (run_plain_churn if args.churn else run_client)(args, uris)
        child.stdin.write("stop\n")
        child.stdin.flush()
        server = json.loads(child.stdout.readline())
    finally:
        child.stdin.close()
        child.wait(timeout=60)
        state.cleanup()
    report = {"hosts": args.hosts, "client": client, "server": server}
    if args.churn:
        counters = server["counters"]
        server["unauthenticated_calls_per_login"] = round(
            counters["unauthenticated_calls"] / max(1, counters["logins_ok"]), 2)
    report["problems"] = check_churn(report, args.duration) if args.churn else check(report)
    print(json.dumps(report, indent=None if args.json else 2))
    return 1 if report["problems"] else 0


def _child_args(args: argparse.Namespace) -> list[str]:
    churn = ["--churn", "--cuts", str(args.cuts)] if args.churn else []
    idle = ["--idle-timeout", str(args.idle_timeout)] if args.idle_timeout else []
    return ["--hosts", str(args.hosts), "--seed", str(args.seed), "--drop-rate", str(args.drop_rate),
            "--restart-rate", str(args.restart_rate), "--restart-downtime", str(args.restart_downtime),
            "--job-seconds", str(args.job_seconds), *churn, *idle]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of traffic")
    parser.add_argument("--short", action="store_true", help="100 hosts, 12 s, more chaos (CI), 1 s restarts")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drop-rate", type=float, default=0.004, help="drops per host per second")
    parser.add_argument("--restart-rate", type=float, default=0.001, help="restarts per host per second")
    parser.add_argument("--restart-downtime", type=float, default=0.0,
                        help="simulated seconds a restarted host's middleware stays down (nginx answers 502)")
    parser.add_argument("--job-seconds", type=float, default=3.0, help="how long each job runs")
    parser.add_argument("--sample", type=int, default=100, help="hosts per round")
    parser.add_argument("--drivers", type=int, default=3, help="rounds in flight at once")
    parser.add_argument("--job-share", type=float, default=0.3, help="share of hosts doing a job")
    parser.add_argument("--churn", action="store_true",
                        help="plain Python, every host every --interval s, --cuts connections cut a second")
    parser.add_argument("--cuts", type=int, default=3, help="churn: connections cut a second")
    parser.add_argument("--interval", type=float, default=0.2, help="churn: seconds between rounds")
    parser.add_argument("--idle-timeout", type=float, default=None,
                        help="the hosts cut a connection silent this long, as a proxy does")
    parser.add_argument("--json", action="store_true", help="one-line JSON report")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.churn:
        explicit = set(argv if argv is not None else sys.argv[1:])
        args.hosts = args.hosts if "--hosts" in explicit else 10
        args.duration = args.duration if "--duration" in explicit else (4.0 if args.short else 15.0)
        args.restart_rate = args.restart_rate if "--restart-rate" in explicit else 0.0
    elif args.short:
        args.hosts, args.duration, args.sample = min(args.hosts, 100), min(args.duration, 12.0), 30
        args.drop_rate, args.restart_rate, args.job_seconds = 0.05, 0.02, 1.0
        args.restart_downtime = max(args.restart_downtime, 1.0)  # nginx answers 502 meanwhile
    return args


if __name__ == "__main__":
    sys.exit(main())
