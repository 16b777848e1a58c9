"""`fleetclt rollout`: a job across hosts in stages, with a failure budget, live progress and resume.

Ctrl-C once stops starting new jobs and detaches from running ones (they go on
on their hosts; the journal keeps their ids for --resume), prints how to resume
and exits 130; twice exits at once. Otherwise exit 0 when every host
succeeded, 2 otherwise, 1 when nothing ran. Failed hosts are remembered for
`--hosts @failed`, as after a fan-out.
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
from ..local.state import save_last_run
from ..rollout.engine import Rollout, RolloutResult
from ..rollout.journal import Journal, writable_dir
from ..rollout.observer import FAILED, HostState
from ..rollout.plan import Budget, RolloutPlan, named_option, parse_batch
from . import output
from .argtypes import count, seconds, seconds_or_zero
from .call_args import add_call_arguments, call_params, parse_arg
from .fleet import add_concurrency_options, fleet_for, selection
from .rollout_view import progress_view
from .status import ExitStatus


def add_rollout_command(commands: Any) -> None:
    parser = commands.add_parser("rollout", help="run a job across hosts in stages (failure budget, resume)",
                                 description="Run METHOD as a job on the selected hosts, stage by stage.")
    parser.add_argument("--hosts", metavar="PATTERN",
                        help="which hosts (required; see `fleetclt hosts`); with --resume, only these of the run's")
    parser.add_argument("--batch", metavar="SPEC",
                        help="stage sizes, e.g. 1,10%%,100%% (the last repeats; default one stage)")
    parser.add_argument("--window", type=count, metavar="N", help="a sliding window of N hosts instead of stages")
    parser.add_argument("--max-fail", metavar="N|P%",
                        help="failed hosts tolerated over the whole rollout (default 0: halt on the first)")
    parser.add_argument("--pause", type=seconds_or_zero, metavar="S", help="wait between stages")
    parser.add_argument("--health", metavar="'METHOD [ARG ...]'",
                        help="after each stage, call this on the stage's hosts; falsy or error = failed")
    parser.add_argument("--abort-on-halt", action="store_true", help="abort running jobs when halting")
    parser.add_argument("--stall", type=seconds, metavar="S",
                        help="warn when a job's progress has not changed for S seconds (default 300)")
    parser.add_argument("--upload", action="append", metavar="PATH",
                        help="start each host's job by uploading PATH into it (POST /_upload, e.g. update.file); "
                             "repeat for several files")
    parser.add_argument("--output", "-o", choices=output.FORMATS, help="default: table on a terminal, else json")
    add_concurrency_options(parser)
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="continue a rollout from its journal; the options above given with it change it "
                             "from then on (--hosts narrows this resume only)")
    add_call_arguments(parser, required=False)


def run(args: argparse.Namespace) -> int:
    rollout = _resume(args) if args.resume else _start(args)
    rollout.observers.append(progress_view(sys.stderr, rollout.plan.stall_after))
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
    states = {name: record.state for name, record in result.hosts.items()}
    save_last_run(rollout.fleet.inventory.path, result.plan.method,
                  failed=[name for name, state in states.items() if state in FAILED],
                  ok=[name for name, state in states.items() if state is HostState.OK])
    _render(result, output.output_format(args.output))
    if interrupts[0]:
        print(f"interrupted; resume with: fleetclt rollout --resume {rollout.run_id}", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    return ExitStatus.OK if result.ok else ExitStatus.SOME_FAILED


def _start(args: argparse.Namespace) -> Rollout:
    if not args.method:
        raise ConfigError("rollout needs METHOD (or --resume RUN_ID)")
    if args.hosts is None:
        raise ConfigError("rollout needs --hosts PATTERN (--hosts all for every host)")
    options = _plan_options(args)
    writable_dir()
    inventory, names = selection(args)
    plan = RolloutPlan(args.method, tuple(call_params(args, sys.stdin)), upload=tuple(args.upload or ()), **options)
    return Rollout.start(fleet_for(inventory, args), plan, names)


def _resume(args: argparse.Namespace) -> Rollout:
    """The journal's rollout, with the options given now; the inventory is the journal's unless -i says."""
    options = _plan_options(args)
    if args.upload:
        raise ConfigError("--upload is the rollout's own: a resume sends the files it started with")
    journal, replay = Journal.open(args.resume)
    method = replay.plan["method"]
    if args.method and args.method != method:
        raise ConfigError(f"rollout {journal.run_id} runs {method}, not {args.method}")
    params = call_params(args, sys.stdin) if args.method else None
    args.inventory = args.inventory or replay.header["inventory"]
    inventory, names = selection(args) if args.hosts is not None else (load_inventory(args.inventory), None)
    return Rollout.resume(fleet_for(inventory, args), journal, replay, params=params, hosts=names, **options)


def _plan_options(args: argparse.Namespace) -> dict[str, Any]:
    """The plan options given on the command line, checked; usage errors name the flags."""
    if args.batch is not None:
        named_option("--batch", lambda: parse_batch(args.batch))
    if args.max_fail is not None:
        named_option("--max-fail", lambda: Budget.parse(args.max_fail))
    given = {"batch": args.batch, "window": args.window, "max_fail": args.max_fail, "pause": args.pause,
             "stall_after": args.stall, "abort_on_halt": args.abort_on_halt or None,
             "health": None if args.health is None else named_option("--health", lambda: _health(args.health))}
    return {name: value for name, value in given.items() if value is not None}


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
