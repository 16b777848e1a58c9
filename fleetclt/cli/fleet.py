"""Fleet commands: `call --hosts`, `ping --hosts` and `hosts`, driven from the inventory.

stdout carries data only; progress goes to stderr, and only when stderr is a
terminal. The output formats and exit codes are the contract in docs/cli.md:
scripts parse them, so change them only together with that page.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ..agent.wire import HostWork
from ..agent.work import run_work, select_hosts
from ..fleet.fleet import Fleet
from ..fleet.results import FleetResult, HostResult, ResultCallback
from ..fleet.runner import DEFAULT_FORKS, DEFAULT_MAX_CONNECTING
from ..inventory.load import Inventory, load_inventory
from ..local.state import save_last_run
from . import agent_client, output
from .argtypes import count, seconds
from .call_args import call_params
from .options import warn_plain_api_key, warn_unverified
from .status import ExitStatus


def add_fleet_options(parser: argparse.ArgumentParser, *, with_forks: bool = True) -> None:
    group = parser.add_argument_group(
        "fleet mode (--hosts PATTERN)", "Hosts, credentials and TLS settings come from the inventory "
        "(-i PATH, $FLEETCLT_INVENTORY or ./inventory.yaml).")
    add_hosts_option(group)
    group.add_argument("--output", "-o", choices=output.FORMATS,
                       help="default: table on a terminal, else json")
    if with_forks:
        add_concurrency_options(group)
        group.add_argument("--deadline", type=seconds, metavar="SECONDS",
                           help="stop waiting after this long; unfinished hosts are reported as timeout")


def add_hosts_option(parser: Any) -> None:
    parser.add_argument("--hosts", metavar="PATTERN",
                        help="all, names, globs, ~regex, a,b (union), &group, !group, @failed")


def add_concurrency_options(parser: Any) -> None:
    """--forks and --max-connecting, for every command that opens sessions (unset: None, so a
    one-host command can tell that they were given, and refuse them)."""
    parser.add_argument("--forks", type=count, metavar="N", help=f"hosts worked on at once ({DEFAULT_FORKS})")
    parser.add_argument("--max-connecting", type=count, metavar="N",
                        help=f"connects and logins in progress at once ({DEFAULT_MAX_CONNECTING})")


def fleet_for(inventory: Inventory, args: argparse.Namespace) -> Fleet:
    """The Fleet that --forks and --max-connecting ask for."""
    return Fleet(inventory, forks=args.forks, max_connecting=args.max_connecting)  # None: the defaults


def add_hosts_command(commands: Any) -> None:
    hosts = commands.add_parser("hosts", help="list the hosts a pattern selects, without connecting")
    add_fleet_options(hosts, with_forks=False)


def selection(args: argparse.Namespace, *, connecting: bool = True) -> tuple[Inventory, list[str]]:
    """The inventory and the names `--hosts` selects; no host matched is a usage error.

    `connecting`: the hosts are about to be connected to, so those whose
    certificates will not be checked are named in one warning, and those whose
    API key may go over ws:// in another.
    """
    inventory = load_inventory(args.inventory)
    names, unverified = select_hosts(inventory, args.hosts)
    if connecting and unverified:
        warn_unverified(unverified, "verify_tls: false")
    plain = [name for name in names if inventory.hosts[name].sends_plain_api_key]
    if connecting and plain:
        warn_plain_api_key(plain, "allow_plain_api_key: true")
    return inventory, names


def run_hosts(args: argparse.Namespace) -> int:
    rows = agent_client.host_rows(args)
    if rows is None:
        inventory, names = selection(args, connecting=False)
        rows = {name: inventory.hosts[name].to_dict() for name in names}
    fmt = output.output_format(args.output)
    if fmt == "table":
        lines = output.table(("HOST", "URI", "GROUPS"),
                             [(name, row["uri"], ",".join(row["groups"])) for name, row in rows.items()])
        print("\n".join(lines), flush=True)
    elif fmt == "jsonl":
        for name, row in rows.items():
            print(output.to_json({"host": name, **row}, indent=False))
        sys.stdout.flush()
    else:
        output.print_document({"hosts": rows}, fmt)
    return ExitStatus.OK


def run_call(args: argparse.Namespace) -> int:
    work = HostWork("call", args.method, call_params(args, sys.stdin), job=args.job or args.job_print is not None,
                    timeout=args.timeout)
    return fan_out(args, args.method, each_host(args, work), work)


def run_ping(args: argparse.Namespace) -> int:
    work = HostWork("ping", timeout=args.timeout)
    return fan_out(args, "core.ping", each_host(args, work), work)


FleetRun = Callable[[Fleet, list[str], ResultCallback], FleetResult]


def each_host(args: argparse.Namespace, work: HostWork) -> FleetRun:
    """A FleetRun that does `work` on each host within --deadline, as the agent does it."""
    return lambda fleet, names, on_result: run_work(fleet, work, names, args.deadline, on_result)


def fan_out(args: argparse.Namespace, method: str, run: FleetRun, work: HostWork | None = None) -> int:
    """`run(fleet, names, on_result)` over the hosts --hosts selects, printed as the output contract says.

    `work`: what `run` does, said so that a running agent can do it instead (docs/agent.md).
    """
    remote = agent_client.start_run(args, work) if work is not None else None
    if remote is None:
        inventory, names = selection(args)
        path, execution = inventory.path, _direct(inventory, args, run, names)
    else:
        if remote.unverified:
            warn_unverified(remote.unverified, "verify_tls: false")
        path, names, execution = remote.inventory, remote.names, remote.execution()
    fmt = output.output_format(args.output)
    progress = _Progress(len(names), sys.stderr) if sys.stderr.isatty() else None
    interrupted, done = False, 0

    def on_result(result: HostResult) -> None:
        nonlocal done
        if interrupted:  # a host cut off by Ctrl-C: its job may well go on, so no made-up row
            return
        done += 1
        if fmt == "jsonl":
            print(output.to_json(result.to_dict(), indent=False), flush=True)
        if progress is not None:
            progress.update(result)
    started = time.monotonic()
    with execution as execute:
        try:
            result = execute(on_result)
        except KeyboardInterrupt:
            interrupted = True  # before the fleet closes its sessions, failing every host still running
            if progress is not None:
                progress.finish()
            print(f"fleetclt: interrupted with {len(names) - done} of {len(names)} hosts unfinished; "
                  "a job already started goes on on its host", file=sys.stderr, flush=True)
            raise
    if progress is not None:
        progress.finish()
    save_last_run(path, method, result.failed, result.ok)
    _render(result, fmt, time.monotonic() - started)
    return ExitStatus.OK if not result.failed else ExitStatus.SOME_FAILED


@contextmanager
def _direct(inventory: Inventory, args: argparse.Namespace, run: FleetRun,
            names: list[str]) -> Iterator[Callable[[ResultCallback], FleetResult]]:
    """The run in this process, over a Fleet of its own that closes when it ends."""
    with fleet_for(inventory, args) as fleet:
        yield lambda on_result: run(fleet, names, on_result)


def document(result: FleetResult) -> dict[str, Any]:
    """The json/yaml output document."""
    hosts = {}
    for name, host in result.items():
        row = host.to_dict()
        del row["host"]
        hosts[name] = row
    summary = {status.value: len(names) for status, names in result.by_status().items()}
    return {"hosts": hosts, "summary": summary}


def _render(result: FleetResult, fmt: str, elapsed: float) -> None:
    if fmt == "table":
        print(output.fleet_table(result, elapsed), flush=True)
    elif fmt != "jsonl":
        output.print_document(document(result), fmt)


class _Progress:
    """`done/total, failed` redrawn on one stderr line."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = total, stream
        self.done = self.failed = 0

    def update(self, result: HostResult) -> None:
        self.done += 1
        self.failed += 0 if result.ok else 1
        self.stream.write(f"\r{self.done}/{self.total} hosts done, {self.failed} not ok")
        self.stream.flush()

    def finish(self) -> None:
        self.stream.write("\r\033[K")
        self.stream.flush()
