"""Single-host commands with midclt habits: ``call``, ``ping`` and ``subscribe`` on one ``--uri``.

Why it differs from midclt (docs/protocol.md §13): every command logs in
(midclt's ``ping`` and ``subscribe`` do not, so they fail on remote hosts), a
failed login exits 1 instead of 0, and no secret ever has to be written on the
command line.

Connection options and secrets are cli/options.py's; fleet mode (``--hosts
PATTERN``) is cli/fleet.py's, which cli/main.py picks when ``--hosts`` is given.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from gevent.queue import Empty, Queue

from ..client.session import HostSession, SubscriptionEnded
from ..errors import ConfigError, FleetError
from ..protocol.endpoint import Endpoint
from ..protocol.jsonrpc import CollectionUpdate
from . import output
from .argtypes import count, seconds
from .call_args import add_call_arguments, call_params, reads_stdin
from .options import add_connection_options, option, read_credentials, secret_on_stdin, tls_policy

log = logging.getLogger(__name__)

COMMANDS = ("call", "ping", "subscribe")


def add_commands(commands: Any) -> None:
    """Register call, ping and subscribe on the top-level subparsers action."""
    call = commands.add_parser("call", help="call a method on one host (midclt call)")
    add_connection_options(call, nested=True)
    call.add_argument("-j", "--job", action="store_true", help="wait for the job the method starts")
    call.add_argument("-jp", "--job-print", choices=("progressbar", "description"),
                      help="job progress on stderr (implies -j; default: a bar when stderr is a terminal)")
    call.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS",
                      help="time limit for the reply (with -j: for the job id only)")
    add_call_arguments(call)
    ping = commands.add_parser("ping", help="log in and call core.ping")
    add_connection_options(ping, nested=True)
    ping.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="time limit for the reply")
    sub = commands.add_parser("subscribe", help="print events of a collection as JSON lines")
    add_connection_options(sub, nested=True)
    sub.add_argument("event", metavar="EVENT", help="e.g. core.get_jobs, pool.dataset.query or *")
    sub.add_argument("-n", "--number", type=count, metavar="N", help="exit 0 after N events")
    sub.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="exit 1 if the events take longer")
    sub.epilog = ("When the server ends the subscription it exits as midclt does: 0 when its source "
                  "finished, 1 with the server's error.")


# -- running ---------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    """Run one single-host command; expected errors become messages and exit codes."""
    try:
        return _COMMANDS[args.command](args)
    except ConfigError:
        raise  # cli.main reports it: nothing ran
    except FleetError as exc:
        output.print_error(exc, trace=bool(getattr(args, "debug", False)))
        return 1
    except BrokenPipeError:
        _silence_stdout()
        return 1


def run_call(args: argparse.Namespace) -> int:
    if reads_stdin(args) and secret_on_stdin(args):
        raise ConfigError("stdin cannot carry both the secret and the arguments; "
                          "give the secret with --password-env, --password-file or a key file")
    params = call_params(args, sys.stdin)
    wait = args.job or args.job_print is not None
    reporter = output.progress_reporter(args.job_print) if wait else None
    with open_session(args) as session:
        try:
            result = session.call(args.method, *params, timeout=args.timeout, job=wait, on_progress=reporter)
        finally:
            if reporter is not None:
                reporter.finish()
    print(output.render_result(result), flush=True)
    return 0


def run_ping(args: argparse.Namespace) -> int:
    with open_session(args) as session:
        print(output.render_result(session.call("core.ping", timeout=args.timeout)), flush=True)
    return 0


def run_subscribe(args: argparse.Namespace) -> int:
    events: Queue = Queue()
    with open_session(args) as session:
        session.subscribe(args.event, events.put, on_end=events.put)
        log.debug("%s: subscribed to %s", session.name, args.event)
        return _print_events(events, args.number, args.timeout)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "call": run_call, "ping": run_ping, "subscribe": run_subscribe}


def _print_events(events: Queue, number: int | None, timeout: float | None) -> int:
    """Print events until `number` arrived (0), `timeout` passed (1) or the server ended the subscription.

    An end is midclt's: 0 when the source finished, 1 with the server's error.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    while number is None or seen < number:
        update = _next_event(events, deadline)
        if update is None:
            print(f"Timeout: {seen} of {number or 'the'} events within {timeout:g} s", file=sys.stderr)
            return 1
        if isinstance(update, SubscriptionEnded):
            if update.resubscribing:
                continue
            if update.error is not None:
                output.print_error(update.error)
                return 1
            log.debug("the server ended the subscription to %s", update.collection)
            return 0
        print(output.render_event(update), flush=True)
        seen += 1
    return 0


def _next_event(events: Queue, deadline: float | None) -> CollectionUpdate | SubscriptionEnded | None:
    """The next event or end notice, or None at the deadline (a dropped connection re-subscribes by itself)."""
    try:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        event: CollectionUpdate | SubscriptionEnded = events.get(timeout=timeout)
        return event
    except Empty:
        return None


def _silence_stdout() -> None:
    """The reader went away (`| head`): stop Python's exit-time flush from failing too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# -- session -------------------------------------------------------------------------


def open_session(args: argparse.Namespace) -> HostSession:
    """A session for ``--uri``; the URI and TLS options are checked before any secret is asked for."""
    uri = option(args, "uri")
    if not uri:
        raise ConfigError(f"{args.command} needs --uri URI (ws://HOST, wss://HOST or ws+unix://PATH)")
    try:
        endpoint = Endpoint.parse(uri)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tls = tls_policy(args)
    name = endpoint.unix_path or endpoint.host
    return HostSession(name, uri, read_credentials(args, name), tls=tls)


