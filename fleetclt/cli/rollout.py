"""`fleetclt rollout`: a job across hosts in stages, with a failure budget, live progress and resume.

Ctrl-C once stops starting new jobs and detaches from running ones (they go on
on their hosts; the journal keeps their ids for --resume); twice exits at once.
Exit 0 when every host succeeded, 2 otherwise, 1 when nothing ran.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from typing import Any

import gevent

from ..errors import ConfigError
from ..inventory.load import load_inventory
from ..rollout.engine import Rollout, RolloutResult
from ..rollout.journal import Journal
from ..rollout.observer import RolloutObserver
from ..rollout.plan import Budget, RolloutPlan, named_option, parse_batch
from . import output
from .argtypes import count, finite_spec, seconds, seconds_or_zero
from .call_args import add_call_arguments, call_params, parse_arg
from .fleet import add_concurrency_options, fleet_for, selection
from .rollout_view import progress_view
from .status import ExitStatus


def add_rollout_command(commands: Any) -> None:
    parser = commands.add_parser("rollout", help="run a job across hosts in stages (failure budget, resume)",
                                 description="Run METHOD as a job on the selected hosts, stage by stage.")
    parser.add_argument("--hosts", metavar="PATTERN", help="which hosts (see `fleetclt hosts`)")
    parser.add_argument("--batch", default="100%", type=finite_spec, metavar="SPEC",
                        help="stage sizes, e.g. 1,10%%,100%% (the last repeats; default one stage)")
    parser.add_argument("--window", type=count, metavar="N", help="a sliding window of N hosts instead of stages")
    parser.add_argument("--max-fail", default="0", type=finite_spec, metavar="N|P%",
                        help="failed hosts tolerated over the whole rollout (default 0: halt on the first)")
    parser.add_argument("--pause", type=seconds_or_zero, default=0.0, metavar="S", help="wait between stages")
    parser.add_argument("--health", metavar="'METHOD [ARG ...]'",
                        help="after each stage, call this on the stage's hosts; falsy or error = failed")
    parser.add_argument("--abort-on-halt", action="store_true", help="abort running jobs when halting")
    parser.add_argument("--stall", type=seconds, default=300.0, metavar="S",
                        help="warn when a job's progress has not changed for S seconds (default 300)")
    parser.add_argument("--output", "-o", choices=output.FORMATS, help="default: table on a terminal, else json")
    add_concurrency_options(parser)
    parser.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted rollout from its journal")
    add_call_arguments(parser, required=False)


def run(args: argparse.Namespace) -> int:
    view = progress_view(sys.stderr, args.stall)
    rollout = _resume(args, view) if args.resume else _start(args, view)
    interrupts = [0]

    def on_interrupt() -> None:
        interrupts[0] += 1
        if interrupts[0] > 1:
            os._exit(ExitStatus.INTERRUPTED)
        print(f"\nstopping: no new jobs; resume with: fleetclt rollout --resume {rollout.run_id}",
              file=sys.stderr, flush=True)
        rollout.stop()
    handler = gevent.signal_handler(signal.SIGINT, on_interrupt)
    print(f"rollout {rollout.run_id}: journal {rollout.journal.path}", file=sys.stderr, flush=True)
    try:
        result = rollout.run()
    finally:
        handler.cancel()
        rollout.fleet.close()
    _render(result, output.output_format(args.output))
    return ExitStatus.OK if result.ok else ExitStatus.SOME_FAILED


def _start(args: argparse.Namespace, view: RolloutObserver) -> Rollout:
    if not args.method:
        raise ConfigError("rollout needs METHOD (or --resume RUN_ID)")
    named_option("--batch", lambda: parse_batch(args.batch))   # usage errors name the flags
    named_option("--max-fail", lambda: Budget.parse(args.max_fail))
    health = named_option("--health", lambda: _health(args.health))
    inventory, names = selection(args)
    plan = RolloutPlan(args.method, tuple(call_params(args, sys.stdin)), batch=args.batch,
                       max_fail=args.max_fail, window=args.window, pause=args.pause,
                       health=health, abort_on_halt=args.abort_on_halt, stall_after=args.stall)
    return Rollout.start(fleet_for(inventory, args), plan, names, [view])


def _resume(args: argparse.Namespace, view: RolloutObserver) -> Rollout:
    if args.method:
        raise ConfigError("--resume takes the method and hosts from the journal; give no METHOD")
    journal, replay = Journal.open(args.resume)
    inventory = load_inventory(args.inventory or replay.header["inventory"])
    return Rollout.resume(fleet_for(inventory, args), journal, replay, [view])


def _health(text: str | None) -> tuple[Any, ...]:
    if not text:
        return ()
    try:
        words = shlex.split(text)
    except ValueError as exc:  # an unclosed quote
        raise ConfigError(f"cannot read {text!r}: {exc}") from None
    if not words:
        raise ConfigError("needs a method name")
    method, *raw = words
    return (method, *(parse_arg(item) for item in raw))


def _render(result: RolloutResult, fmt: str) -> None:
    report = result.to_dict()
    if fmt == "table":
        for name, row in report["hosts"].items():
            detail = output.to_json(row["result"], indent=False) if "result" in row else \
                (row.get("error") or {}).get("reason", "")
            print(f"{name:16} stage {row['stage']:<3} {row['status']:12} job {row['job_id'] or '-':<6} {detail}")
        print(f"{result.stop_reason} ({', '.join(f'{n} {s}' for s, n in report['summary'].items())})")
    elif fmt == "yaml":
        print(output.to_yaml(report), end="")
    elif fmt == "jsonl":
        for name, row in report["hosts"].items():
            print(output.to_json({"host": name, **row}, indent=False))
    else:
        print(output.to_json(report))
