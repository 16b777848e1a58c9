"""`fleetclt rollout`: a job across hosts in stages, with a failure budget, live progress and resume.

Ctrl-C once stops starting new jobs and detaches from running ones (they go on
on their hosts; the journal keeps their ids for --resume), prints how to resume
and exits 130; twice exits at once. Otherwise exit 0 when every host
succeeded, 2 otherwise (a journal that could not be written too: one line
says so last), 1 when nothing ran. Failed hosts are remembered for
`--hosts @failed`, as after a fan-out.

A running agent drives the rollout on its own sessions when there is one
(docs/agent.md): the same checks, journal, progress and report, and Ctrl-C
does the same. `--detach` leaves the run to the agent; `rollout list`,
`attach RUN_ID` and `stop RUN_ID` (cli/rollout_runs.py) find it again.
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
from typing import Any, Protocol

import gevent

from ..agent import wire
from ..agent.rollout_work import open_rollout, remember
from ..errors import ConfigError
from ..inventory.load import load_inventory
from ..rollout.engine import Rollout, RolloutResult
from ..rollout.journal import peek, writable_dir
from ..rollout.plan import Budget, named_option, parse_batch
from . import agent_client, output, rollout_runs
from .agent_client import add_agent_option
from .argtypes import count, seconds, seconds_or_zero
from .call_args import add_call_arguments, call_params, parse_arg
from .fleet import add_concurrency_options, fleet_for, selection
from .options import warn_plain_api_key, warn_unverified
from .rollout_remote import RemoteRollout
from .rollout_report import exit_code, journal_failed, render
from .rollout_view import LogView, progress_view
from .status import ExitStatus


def add_rollout_command(commands: Any) -> None:
    parser = commands.add_parser("rollout", help="run a job across hosts in stages (failure budget, resume)",
                                 description="Run METHOD as a job on the selected hosts, stage by stage. Also: "
                                             "rollout list; rollout attach RUN_ID; rollout stop RUN_ID [--abort] "
                                             "(docs/rollouts.md).")
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
    parser.add_argument("--detach", action="store_true",
                        help="leave the run to the agent: print its run id and return (rollout attach RUN_ID)")
    parser.add_argument("--abort", action="store_true", help="with `rollout stop RUN_ID`: abort the running jobs")
    add_agent_option(parser)
    parser.add_argument("--resume", metavar="RUN_ID",
                        help="continue a rollout from its journal; the options above given with it change it "
                             "from then on (--hosts narrows this resume only)")
    add_call_arguments(parser, required=False)


class Driver(Protocol):
    """Who drives the run: this process (_Direct) or the agent (RemoteRollout)."""

    run_id: str
    journal: str
    stall_after: float

    def run(self, view: LogView) -> RolloutResult: ...

    def interrupt(self) -> None: ...


class _Direct:
    """The rollout in this process, on its own sessions."""

    def __init__(self, rollout: Rollout) -> None:
        self.rollout = rollout
        self.run_id, self.journal = rollout.run_id, str(rollout.journal.path)
        self.stall_after = rollout.plan.stall_after

    def run(self, view: LogView) -> RolloutResult:
        self.rollout.observers.append(view)
        try:
            result = self.rollout.run()
        finally:
            self.rollout.fleet.close()
        remember(self.rollout.fleet.inventory.path, result)
        return result

    def interrupt(self) -> None:
        self.rollout.stop()


def run(args: argparse.Namespace) -> int:
    if args.method in rollout_runs.ACTIONS and not args.resume:
        return rollout_runs.run(args)
    rollout_runs.refuse_abort(args)
    work = _work(args)
    remote = _in_agent(args, work)
    if work.detach and remote is not None:
        remote.close()
        print(remote.run_id, flush=True)
        print(f"rollout {remote.run_id} runs in agent {remote.mirror.pid}: journal {remote.journal}; follow it "
              f"with: fleetclt rollout attach {remote.run_id}", file=sys.stderr, flush=True)
        return ExitStatus.OK
    return _follow(remote or _direct(args, work), output.output_format(args.output))


def _follow(driver: Driver, fmt: str) -> int:
    """Progress on stderr until the run ends, then the report; Ctrl-C interrupts the run."""
    view = progress_view(sys.stderr, driver.stall_after)
    interrupts = [0]

    def on_interrupt() -> None:
        interrupts[0] += 1
        if interrupts[0] > 1:
            os._exit(ExitStatus.INTERRUPTED)
        print(f"\nstopping: no new jobs; resume with: fleetclt rollout --resume {driver.run_id}",
              file=sys.stderr, flush=True)
        driver.interrupt()
    handler = gevent.signal_handler(signal.SIGINT, on_interrupt)
    print(f"rollout {driver.run_id}: journal {driver.journal}", file=sys.stderr, flush=True)
    try:
        result = driver.run(view)
    finally:
        handler.cancel()
    render(result, fmt)
    if journal_failed(result):  # the last word on stderr, whatever the report's format
        print(f"fleetclt: {result.stop_reason}", file=sys.stderr, flush=True)
    if interrupts[0]:
        print(f"interrupted; resume with: fleetclt rollout --resume {driver.run_id}", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    return exit_code(result)


def _work(args: argparse.Namespace) -> wire.RolloutWork:
    """What the command line asks, checked; a resume's inventory is the journal's unless -i says."""
    detach = bool(args.detach)
    if args.resume:
        options = _plan_options(args)
        if args.upload:
            raise ConfigError("--upload is the rollout's own: a resume sends the files it started with")
        args.inventory = args.inventory or peek(args.resume).header["inventory"]
        params = call_params(args, sys.stdin) if args.method else None
        return wire.RolloutWork(args.method, params, options, resume=args.resume, detach=detach)
    if not args.method:
        raise ConfigError("rollout needs METHOD (or --resume RUN_ID)")
    if args.hosts is None:
        raise ConfigError("rollout needs --hosts PATTERN (--hosts all for every host)")
    options = _plan_options(args)
    return wire.RolloutWork(args.method, call_params(args, sys.stdin), options,
                            upload=[os.path.abspath(path) for path in args.upload or ()], detach=detach)


def _in_agent(args: argparse.Namespace, work: wire.RolloutWork) -> RemoteRollout | None:
    """The run in the agent, or None to drive it here; warnings about its hosts are said here."""
    answer = agent_client.ask(args, agent_client.request(wire.ROLLOUT, args, rollout=work),
                              needed_by="rollout --detach" if work.detach else None)
    if answer is None:
        return None
    connection, first = answer
    try:
        remote = RemoteRollout(connection, wire.expect(first, wire.RUN_INFO))
    except (wire.WireError, KeyError, TypeError) as exc:
        connection.close()
        raise ConfigError(f"the agent answered out of turn ({exc})") from None
    if remote.unverified:
        warn_unverified(remote.unverified, "verify_tls: false")
    if remote.plain:
        warn_plain_api_key(remote.plain, "allow_plain_api_key: true")
    return remote


def _direct(args: argparse.Namespace, work: wire.RolloutWork) -> _Direct:
    if work.resume is None:
        writable_dir()
    if work.resume is None or args.hosts is not None:
        inventory, names = selection(args)
    else:
        inventory, names = load_inventory(args.inventory), None
    return _Direct(open_rollout(fleet_for(inventory, args), work, names))


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
