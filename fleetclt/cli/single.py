"""Single-host commands with midclt habits: ``call``, ``ping`` and ``subscribe`` on one ``--uri``.

Why it differs from midclt (docs/protocol.md §13): every command logs in
(midclt's ``ping`` and ``subscribe`` do not, so they fail on remote hosts), a
failed login exits 1 instead of 0, and no secret ever has to be written on the
command line.

The parsers are cli/commands.py's, connection options and secrets
cli/options.py's; fleet mode (``--hosts PATTERN``) is cli/fleet.py's, which
cli/main.py picks when ``--hosts`` is given.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable

from gevent.queue import Empty, Queue

from ..client.session import HostSession, SubscriptionEnded
from ..errors import ConfigError, FleetError
from ..protocol.endpoint import Endpoint
from ..protocol.jsonrpc import CollectionUpdate
from . import fleet_events, modes, output, stdout
from .call_args import call_params, reads_stdin
from .options import option, read_credentials, secret_on_stdin, tls_policy, warn_plain_api_key, warn_unverified

log = logging.getLogger(__name__)

COMMANDS = ("call", "ping", "subscribe")


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
    if modes.fleet_mode(args):
        return fleet_events.run_subscribe(args)
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
            print(fleet_events.timed_out(seen, number, timeout or 0.0), file=sys.stderr)
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
        if stdout.lost():  # the reader went away (`| head`): nobody wants the next event
            return 0
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


# -- session -------------------------------------------------------------------------


def open_session(args: argparse.Namespace) -> HostSession:
    """A session for ``--uri``; the URI and TLS options are checked before any secret is asked for."""
    uri = option(args, "uri")
    if not uri:
        raise ConfigError(f"{args.command} needs --hosts PATTERN (hosts of the inventory) or --uri URI (one host: "
                          "ws://HOST, wss://HOST or ws+unix://PATH)")
    try:
        endpoint = Endpoint.parse(uri)
    except ValueError as exc:
        raise ConfigError(f"--uri {exc}") from None
    tls = tls_policy(args)
    name = endpoint.unix_path or endpoint.host
    if not tls.verify and endpoint.scheme == "wss" and not endpoint.unix_path:
        warn_unverified([name], "--insecure")
    credentials = read_credentials(args, name)
    if credentials.api_key is not None and credentials.allow_plain_api_key and endpoint.scheme == "ws" \
            and not endpoint.unix_path:
        warn_plain_api_key([name], "--allow-plain-api-key")
    return HostSession(name, uri, credentials, tls=tls)


