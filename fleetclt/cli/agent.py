"""`fleetclt agent start|status|stop`: the background agent that keeps one inventory's sessions (docs/agent.md)."""
from __future__ import annotations

import argparse
import re
from argparse import ArgumentTypeError
from typing import Any

from ..errors import ConfigError
from . import output
from .agent_client import DEFAULT_IDLE, NoAgent, agent_status, inventory_file, start_agent, stop_agent
from .argtypes import seconds
from .status import ExitStatus

_UNITS = {"s": 1, "m": 60, "h": 3600}


def duration(text: str) -> float:
    """`90`, `90s`, `30m` or `2h`: seconds, more than zero."""
    match = re.fullmatch(r"(.+?)([smh]?)", text.strip())
    if match is None:
        raise ArgumentTypeError(f"not a duration: {text!r}")
    return seconds(match.group(1)) * _UNITS.get(match.group(2) or "s", 1)


def add_agent_command(commands: Any) -> None:
    agent = commands.add_parser(
        "agent", help="a background agent that keeps the inventory's sessions between commands",
        description="One agent per user and inventory keeps a logged-in session per host; call, ping and hosts "
                    "in fleet mode use it automatically (docs/agent.md).")
    actions = agent.add_subparsers(dest="agent_action", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start the agent of the inventory (-i) and return once it serves")
    start.add_argument("--idle", type=duration, default=DEFAULT_IDLE, metavar="DURATION",
                       help="stop when nobody used it this long: 90s, 30m, 2h (default 30m)")
    status = actions.add_parser("status", help="pid, uptime, sessions by state, logins so far")
    status.add_argument("--output", "-o", choices=("text", "json"), default="text")
    actions.add_parser("stop", help="close the sessions, log out and exit")


def run(args: argparse.Namespace) -> int:
    path = inventory_file(args)
    if args.agent_action == "start":
        pid = start_agent(path, args.idle)
        print(f"agent {pid} serves {path} (stops after {_human(args.idle)} unused)", flush=True)
        return ExitStatus.OK
    try:
        if args.agent_action == "stop":
            print(f"agent {stop_agent(path)} stopped", flush=True)
            return ExitStatus.OK
        state = agent_status(path)
    except NoAgent as exc:
        raise ConfigError(f"no agent is running for {path}" + (f": {exc}" if str(exc) else "")) from None
    if args.output == "json":
        print(output.to_json(state), flush=True)
    else:
        print(_describe(state), flush=True)
    return ExitStatus.OK


def _describe(state: dict[str, Any]) -> str:
    sessions = state["sessions"]
    shown = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in sessions.items() if count)
    return "\n".join([
        f"agent {state['pid']} for {state['inventory']} (fleetclt {state['version']})",
        f"up {_human(state['uptime'])}, stops after {_human(state['idle'])} unused",
        f"sessions: {shown or 'none'} ({state['hosts']} hosts)",
        f"logins so far: {state['logins']}",
        f"clients now: {state['clients']}, requests so far: {state['requests']}, "
        f"inventory re-read: {state['reloads']} times",
        f"rollouts running: {len(state['rollouts'])}" + "".join(f" {run_id}" for run_id in state["rollouts"]),
    ])


def _human(secs: float) -> str:
    secs = int(secs)
    if secs < 120:
        return f"{secs}s"
    if secs < 7200:
        return f"{secs // 60}m{secs % 60:02d}s" if secs % 60 else f"{secs // 60}m"
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
