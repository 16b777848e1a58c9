"""Ratios, target checks and the markdown table of one benchmark run.

Every ratio is fleetclt (API) / contender for the same figure in the same run:
below 1 means fleetclt spent less (time, CPU, memory, logins); for calls/s,
above 1 means fleetclt did more.
"""
from __future__ import annotations

from typing import Any

CONTENDERS = {"fleetclt": "fleetclt API", "fleetclt-thread": "fleetclt API, hub thread",
              "cli": "fleetclt CLI", "cli-agent": "fleetclt CLI via agent", "threads": "thread per host",
              "asyncio": "asyncio reference", "baseline": "fleetclt baseline (--baseline)"}
FIGURES = {
    "connect_login_s": "connect+login s",
    "connect_cpu_us_per_host": "connect CPU us/host",
    "round_ms_median": "round ms median",
    "round_ms_p99": "round ms p99",
    "cpu_us_per_call": "CPU us/call",
    "sim_cpu_cores": "sim CPU cores",
    "rss_kib_per_session": "RSS KiB/session",
    "calls_per_s": "calls/s",
    "job_fanout_s": "job fan-out s",
    "logins_per_host_max": "logins/host",
    "ebusy": "EBUSY",
}
# The issue sets the RSS target for a 10,000-host process; it is checked from 1,000 hosts.
# Below that the ~0.8 MiB the first connect costs once (gevent's lazy imports, wsproto's
# handshake, the auth-budget store) is most of the figure: 100 hosts read 38 KiB a session
# where the 2nd to 100th read 30 and the 101st to 300th 25 (one run, /proc VmRSS).
RSS_TARGET_FROM = 1000
AGENT_ROUND_TARGET = 1.5   # a round through the agent, over the CLI's start-up + the API's round
AGENT_RSS_TARGET = 1.1     # the agent's RSS per idle session, over the API's


def ratios(by_contender: dict[str, dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """fleetclt / contender for every figure both have as a positive number."""
    base = by_contender.get("fleetclt", {})
    return {name: {key: _ratio(base.get(key), figures.get(key)) for key in FIGURES}
            for name, figures in by_contender.items() if name != "fleetclt"}


def _ratio(ours: Any, theirs: Any) -> float | None:
    if not isinstance(ours, (int, float)) or not isinstance(theirs, (int, float)) or not theirs:
        return None
    return round(ours / theirs, 3)


def targets(results: dict[str, dict[str, dict[str, Any]]], job_seconds: float) -> list[dict[str, Any]]:
    """The issue's targets, checked on the largest size that has the contenders each needs."""
    checks = []
    for size, by in sorted(results.items(), key=lambda kv: int(kv[0])):
        us, ref, naive = by.get("fleetclt", {}), by.get("asyncio", {}), by.get("threads", {})
        checks += [
            _check(size, "round median <= asyncio reference", us, ref, "round_ms_median", lambda r: r <= 1.0),
            _check(size, "round median 5x faster than thread per host", us, naive, "round_ms_median",
                   lambda r: r <= 0.2),
            _check(size, "CPU per call <= 0.9x asyncio reference", us, ref, "cpu_us_per_call", lambda r: r <= 0.9),
        ]
        if us and int(size) >= RSS_TARGET_FROM:
            checks.append({"size": size, "target": "RSS per session < 40 KiB", "value": us["rss_kib_per_session"],
                           "met": us["rss_kib_per_session"] < 40})
        if us:
            checks.append({"size": size, "target": "1 login per host, 0 EBUSY",
                           "value": f'{us["logins_per_host_max"]} / {us["ebusy"]}',
                           "met": us["logins_per_host_max"] == 1 and us["ebusy"] == 0})
        if us and int(size) == 1000:
            checks.append({"size": size, "target": "connect+login 1,000 hosts < 1 s", "value": us["connect_login_s"],
                           "met": us["connect_login_s"] < 1.0})
        checks += _agent_checks(size, us, by.get("cli-agent", {}))
        if us and int(size) >= 10000:
            checks.append({"size": size, "target": "10,000 hosts in one process", "value": us["connect_failures"],
                           "met": us["connect_failures"] == 0 and us["round_failures"] == 0})
    return [c for c in checks if c is not None]


def _agent_checks(size: str, us: dict[str, Any], agent: dict[str, Any]) -> list[dict[str, Any]]:
    """A round through the agent against start-up + the API's round; its RSS per session against the API's."""
    if not us or not agent:
        return []
    budget = agent["startup_ms"] + us["round_ms_median"]
    ratio = round(agent["round_ms_median"] / budget, 3)
    checks = [{"size": size, "target": f"CLI via agent round <= {AGENT_ROUND_TARGET:g}x (start-up + API round)",
               "value": f'{ratio} ({agent["round_ms_median"]:.0f} ms / ({agent["startup_ms"]:.0f} + '
                        f'{us["round_ms_median"]:.0f} ms))', "met": ratio <= AGENT_ROUND_TARGET}]
    if int(size) >= RSS_TARGET_FROM:
        rss = _ratio(agent["rss_kib_per_session"], us["rss_kib_per_session"])
        checks.append({"size": size, "target": "agent RSS per idle session <= 1.1x the API's",
                       "value": f'{rss} ({agent["rss_kib_per_session"]} / {us["rss_kib_per_session"]} KiB)',
                       "met": rss is not None and rss <= AGENT_RSS_TARGET})
    return checks


def _check(size: str, target: str, us: dict[str, Any], them: dict[str, Any], key: str,
           good: Any) -> dict[str, Any] | None:
    ratio = _ratio(us.get(key), them.get(key))
    return None if ratio is None else {"size": size, "target": target, "value": ratio, "met": bool(good(ratio))}


def markdown(document: dict[str, Any]) -> str:
    """Tables: per size, one row per contender, then one ratio row per contender."""
    machine, config = document["machine"], document["config"]
    lines = [f"Machine: {machine['cores']} cores, Python {machine['python']}, {machine['platform']}. "
             f"Latency {config['latency_ms']:g} ms per reply, jobs {config['job_seconds']:g} s, "
             f"{config['rounds']} rounds (+{config['warmup']} warm-up; CLI {config['cli_rounds']}, "
             f"thread per host {config['thread_rounds']}). API, asyncio and baseline: median of "
             f"{config.get('repeat', 1)} runs taken in turn against one fleet.", ""]
    for size, by in sorted(document["results"].items(), key=lambda kv: int(kv[0])):
        lines += _size_table(size, by, document["ratios"].get(size, {})) + [""]
    lines += ["| size | target | value | met |", "|---|---|---|---|"]
    lines += [f"| {c['size']} | {c['target']} | {c['value']} | {'yes' if c['met'] else 'NO'} |"
              for c in document["targets"]]
    return "\n".join(lines) + "\n"


def _size_table(size: str, by: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]) -> list[str]:
    header = f"| N={int(size):,} | " + " | ".join(FIGURES.values()) + " |"
    lines = [header, "|---" * (len(FIGURES) + 1) + "|"]
    for name, figures in by.items():
        lines.append(f"| {CONTENDERS[name]} | " + " | ".join(_cell(figures.get(k)) for k in FIGURES) + " |")
    for name, figures in rows.items():
        lines.append(f"| *fleetclt / {CONTENDERS[name]}* | " + " | ".join(_cell(figures.get(k)) for k in FIGURES)
                     + " |")
    return lines


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)
