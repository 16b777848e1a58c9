"""`rollout list`, `rollout attach RUN_ID`, `rollout stop RUN_ID [--abort]`: rollouts after their command returned.

The journals are the source of truth (docs/rollouts.md): `list` reads them, and
each one's lock names the process driving it. A run the agent drives is
watched (`attach`) and stopped (`stop`) through the agent; a run that ended is
shown from its journal, with the exit code it ended with. None of these starts
an agent: with none running they read the journals alone.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ..agent import wire
from ..errors import ConfigError
from ..rollout.engine import journaled_result
from ..rollout.journal import Replay, journal_dir, lock_path, peek
from ..rollout.lock import live_holder
from ..rollout.observer import FAILED, HostState
from . import agent_client, output
from .rollout_remote import RemoteRollout
from .rollout_report import exit_code, render
from .rollout_view import progress_view, summary
from .status import ExitStatus

ACTIONS = ("list", "attach", "stop")
RECENT = 20   # journals of runs not running that `list` shows, newest first


def run(args: argparse.Namespace) -> int:
    if args.method != "stop":
        refuse_abort(args)
    if args.detach:
        raise ConfigError(f"--detach applies to starting or resuming a rollout, not to rollout {args.method}")
    if args.method == "list":
        if args.args:
            raise ConfigError("rollout list takes no arguments")
        return _list(args)
    if len(args.args or ()) != 1:
        raise ConfigError(f"rollout {args.method} needs one RUN_ID (rollout list shows them)")
    run_id = args.args[0]
    return _attach(args, run_id) if args.method == "attach" else _stop(args, run_id)


def refuse_abort(args: argparse.Namespace) -> None:
    if args.abort:
        raise ConfigError("--abort applies to `rollout stop RUN_ID` only")


# -- attach ---------------------------------------------------------------------------
def _attach(args: argparse.Namespace, run_id: str) -> int:
    """Follow a run the agent drives until it ends (Ctrl-C only detaches), or show one that ended."""
    fmt = output.output_format(args.output)
    answer = agent_client.ask_running(args, agent_client.request(wire.ATTACH, run_id=run_id))
    if answer is not None and answer[1].get("kind") == wire.RUN_INFO:
        connection, first = answer
        remote = RemoteRollout(connection, first)
        try:
            print(f"attached to rollout {run_id} (agent {remote.mirror.pid}): journal {remote.journal}",
                  file=sys.stderr)
            if remote.halted:
                print(f"HALTED: {remote.halted}; no new job will start", file=sys.stderr)
            print(summary(remote.mirror), file=sys.stderr, flush=True)
            result = remote.run(progress_view(sys.stderr, remote.stall_after))
        except KeyboardInterrupt:
            remote.close()
            print(f"\ndetached; the rollout goes on: fleetclt rollout attach {run_id}", file=sys.stderr, flush=True)
            return ExitStatus.OK
        render(result, fmt)
        return exit_code(result)
    if answer is not None:
        answer[0].close()
    replay = _not_driven_by_agent(run_id, "attached")
    result = journaled_result(run_id, replay)
    print(f"rollout {run_id} has ended: {result.stop_reason}", file=sys.stderr, flush=True)
    render(result, fmt)
    return exit_code(result)


# -- stop -----------------------------------------------------------------------------
def _stop(args: argparse.Namespace, run_id: str) -> int:
    answer = agent_client.ask_running(args, agent_client.request(wire.ROLLOUT_STOP, run_id=run_id,
                                                                 abort=args.abort))
    if answer is not None:
        answer[0].close()
        if answer[1].get("kind") == wire.STOP_TAKEN:
            running = answer[1]["running"]
            what = "are being aborted" if args.abort else "finish and are recorded"
            print(f"rollout {run_id}: no new job will start; {running} running jobs {what}; follow it with: "
                  f"fleetclt rollout attach {run_id}", file=sys.stderr, flush=True)
            return ExitStatus.OK
    replay = _not_driven_by_agent(run_id, "stopped")
    raise ConfigError(f"rollout {run_id} is not running: it ended ({replay.stop_reason})")


def _not_driven_by_agent(run_id: str, verb: str) -> Replay:
    """The journal of a run no agent drives: its ending, or an error naming whoever drives it."""
    replay = peek(run_id)
    holder = live_holder(lock_path(run_id))
    if holder is not None:
        raise ConfigError(f"rollout {run_id} runs in process {holder.pid}, not in an agent: only a rollout the "
                          f"agent drives can be {verb} (Ctrl-C where it runs stops it)")
    if replay.stop_reason is None:
        raise ConfigError(f"rollout {run_id} is not running: the process that drove it ended before the run "
                          f"did; resume with: fleetclt rollout --resume {run_id}")
    return replay


# -- list -----------------------------------------------------------------------------
def _list(args: argparse.Namespace) -> int:
    agent = _agent_pid(args)
    rows = []
    shown = 0
    for path in sorted(journal_dir().glob("*.jsonl"), key=_mtime, reverse=True):
        holder = live_holder(lock_path(path.stem))
        if holder is None and shown >= RECENT:
            continue
        try:
            replay = peek(path.stem)
        except ConfigError:
            continue   # not a journal (yet): its header is written just after the file is made
        shown += holder is None
        rows.append(_row(path.stem, replay, None if holder is None else holder.pid, agent))
    fmt = output.output_format(args.output)
    if fmt == "table":
        lines = output.table(("RUN ID", "METHOD", "STATE", "DONE", "FAILED", "TOTAL", "STARTED", "RUNNING IN"),
                             [(row["run_id"], row["method"], row["state"], str(row["done"]), str(row["failed"]),
                               str(row["total"]), row["started"], _runner(row)) for row in rows], right=(3, 4, 5))
        print("\n".join(lines), flush=True)
    elif fmt == "jsonl":
        for row in rows:
            print(output.to_json(row, indent=False))
        sys.stdout.flush()
    else:
        output.print_document({"rollouts": rows}, fmt)
    return ExitStatus.OK


def _agent_pid(args: argparse.Namespace) -> int | None:
    answer = agent_client.ask_running(args, agent_client.request(wire.STATUS))
    if answer is None:
        return None
    answer[0].close()
    return int(answer[1]["pid"]) if answer[1].get("kind") == wire.STATE else None


def _mtime(path: Any) -> float:
    try:
        return float(path.stat().st_mtime)
    except OSError:
        return 0.0


def _row(run_id: str, replay: Replay, pid: int | None, agent: int | None) -> dict[str, Any]:
    states = [record.state for record in replay.hosts.values()]
    total = sum(len(stage) for stage in replay.plan["stages"])
    if pid is not None:
        state = "stopping" if replay.stop_asked else "running"
    elif replay.stop_reason is None:
        state = "died"   # its process ended before the run did: --resume continues it
    else:
        state = replay.stop_reason.split()[0].rstrip(":;")
    return {"run_id": run_id, "method": replay.plan["method"], "state": state,
            "done": states.count(HostState.OK), "failed": sum(1 for s in states if s in FAILED), "total": total,
            "started": _started(run_id), "pid": pid, "agent": pid is not None and pid == agent}


def _started(run_id: str) -> str:
    """The local time a run id begins with (journal.new_run_id)."""
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.strptime(run_id[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return ""


def _runner(row: dict[str, Any]) -> str:
    if row["pid"] is None:
        return "-"
    return f"agent {row['pid']}" if row["agent"] else f"pid {row['pid']}"
