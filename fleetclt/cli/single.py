"""Single-host commands with midclt habits: ``call``, ``ping`` and ``subscribe`` on one ``--uri``.

Why it differs from midclt (docs/protocol.md §13): every command logs in
(midclt's ``ping`` and ``subscribe`` do not, so they fail on remote hosts), a
failed login exits 1 instead of 0, and no secret ever has to be written on the
command line: stdin, a prompt, a file or an environment variable all work, and a
literal ``-P``/``-K`` still works but is warned about. Each secret is wrapped in
``Secret`` the moment it is read, so it cannot reach a log line or a traceback.

Connection options are accepted before the command (``fleetclt --uri U call m``)
and after it (``fleetclt call --uri U m``): ``add_connection_options`` adds them to
both parsers, with SUPPRESS defaults in the subcommand so that an option given
before the command survives. Fleet mode (``--hosts PATTERN``) is cli/fleet.py's,
with its own option group; cli/main.py picks it when ``--hosts`` is given.
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from gevent.queue import Empty, Queue

from ..client.session import Credentials, HostSession
from ..client.tls import TLSPolicy
from ..client.transport import Endpoint
from ..errors import ConfigError, FleetError
from ..protocol import ejson
from ..protocol.jsonrpc import CollectionUpdate
from ..secret import Secret
from . import output
from .argtypes import count, seconds

log = logging.getLogger(__name__)

COMMANDS = ("call", "ping", "subscribe")
PASSWORD_ENV, API_KEY_ENV = "FLEETCLT_PASSWORD", "FLEETCLT_API_KEY"
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_EXPLICIT_SECRETS = ("password", "api_key", "password_env", "api_key_env", "password_file")


# -- arguments -----------------------------------------------------------------------
def add_connection_options(parser: argparse.ArgumentParser, *, nested: bool) -> None:
    """Host, credential and TLS options; `nested` parsers leave unset options untouched."""
    default = argparse.SUPPRESS if nested else None
    group = parser.add_argument_group("host connection")
    group.add_argument("-u", "--uri", default=default, metavar="URI",
                       help="ws://HOST[:PORT][/api/current], wss://... or ws+unix://PATH")
    group.add_argument("-U", "--username", default=default, metavar="USER",
                       help="log in as USER (prompts for the password when no secret is given)")
    _add_secret_options(group, default)
    _add_tls_options(group, default)


def _add_secret_options(group: Any, default: Any) -> None:
    secrets = group.add_mutually_exclusive_group()
    secrets.add_argument("-P", "--password", default=default, metavar="PASS|-",
                         help="'-' reads it from stdin (or prompts); a literal is visible to other users")
    secrets.add_argument("-K", "--api-key", default=default, metavar="KEY|PATH|-",
                         help="API key: '-' reads stdin, an existing PATH is read as a key file")
    secrets.add_argument("--password-file", default=default, metavar="PATH", help="read the password from PATH")
    secrets.add_argument("--password-env", default=default, metavar="NAME",
                         help=f"read the password from env NAME (default: ${PASSWORD_ENV} when set)")
    secrets.add_argument("--api-key-env", default=default, metavar="NAME",
                         help=f"read the API key from env NAME (default: ${API_KEY_ENV} when set)")


def _add_tls_options(group: Any, default: Any) -> None:
    tls = group.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", default=False if default is None else default,
                     help="do not verify the server's certificate")
    tls.add_argument("--tls-fingerprint", default=default, metavar="SHA256",
                     help="trust only the certificate with this SHA-256 fingerprint (hex, colons allowed)")
    tls.add_argument("--ca-file", default=default, metavar="PATH", help="verify against this CA bundle")


def add_commands(commands: Any) -> None:
    """Register call, ping and subscribe on the top-level subparsers action."""
    call = commands.add_parser("call", help="call a method on one host (midclt call)")
    add_connection_options(call, nested=True)
    call.add_argument("-j", "--job", action="store_true", help="wait for the job the method starts")
    call.add_argument("-jp", "--job-print", choices=("progressbar", "description"),
                      help="job progress on stderr (implies -j; default: a bar when stderr is a terminal)")
    call.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS",
                      help="time limit for the reply (with -j: for the job id only)")
    call.add_argument("method", metavar="METHOD")
    call.add_argument("args", nargs="*", metavar="ARG", help="JSON if it parses, else a string; a final - reads "
                      "a JSON array of arguments from stdin")
    ping = commands.add_parser("ping", help="log in and call core.ping")
    add_connection_options(ping, nested=True)
    ping.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="time limit for the reply")
    sub = commands.add_parser("subscribe", help="print events of a collection as JSON lines")
    add_connection_options(sub, nested=True)
    sub.add_argument("event", metavar="EVENT", help="e.g. core.get_jobs, pool.dataset.query or *")
    sub.add_argument("-n", "--number", type=count, metavar="N", help="exit 0 after N events")
    sub.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="exit 1 if the events take longer")


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
    if args.args and args.args[-1] == "-" and _secret_on_stdin(args):
        raise ConfigError("stdin cannot carry both the secret and the arguments; "
                          "give the secret with --password-env, --password-file or a key file")
    params = call_params(args.args, sys.stdin)
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
    if args.number is not None and args.number < 1:
        raise ConfigError("-n needs a number of events of at least 1")
    events: Queue = Queue()
    with open_session(args) as session:
        session.subscribe(args.event, events.put)
        session.connect()
        log.debug("%s: subscribed to %s", session.name, args.event)
        return _print_events(events, args.number, args.timeout)


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "call": run_call, "ping": run_ping, "subscribe": run_subscribe}


def _print_events(events: Queue, number: int | None, timeout: float | None) -> int:
    """Print events until `number` arrived (0) or `timeout` passed (1)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    seen = 0
    while number is None or seen < number:
        update = _next_event(events, deadline)
        if update is None:
            print(f"Timeout: {seen} of {number or 'the'} events within {timeout:g} s", file=sys.stderr)
            return 1
        print(output.render_event(update), flush=True)
        seen += 1
    return 0


def _next_event(events: Queue, deadline: float | None) -> CollectionUpdate | None:
    """The next event, or None at the deadline (the session re-subscribes by itself after a drop)."""
    try:
        return events.get(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
    except Empty:
        return None


def _silence_stdout() -> None:
    """The reader went away (`| head`): stop Python's exit-time flush from failing too."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


# -- call arguments ------------------------------------------------------------------
def parse_arg(text: str) -> Any:
    """midclt's rule: an argument is JSON when it parses, else the string itself."""
    try:
        return ejson.loads(text)
    except ejson.DecodeError:
        return text


def call_params(raw: list[str], stdin: TextIO) -> list[Any]:
    """Parse ARGs; a final ``-`` appends the JSON array read from stdin."""
    if raw and raw[-1] == "-":
        return [parse_arg(arg) for arg in raw[:-1]] + _stdin_params(stdin)
    return [parse_arg(arg) for arg in raw]


def _stdin_params(stdin: TextIO) -> list[Any]:
    if stdin.isatty():
        raise ConfigError("refusing to read arguments from a terminal: pipe a JSON array into stdin")
    try:
        value = ejson.loads(stdin.read())
    except ejson.DecodeError as exc:
        raise ConfigError(f"arguments on stdin are not JSON: {exc}") from None
    if not isinstance(value, list):
        raise ConfigError(f"stdin must hold a JSON array of arguments, not a {type(value).__name__}")
    return value


# -- session -------------------------------------------------------------------------
def _option(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def open_session(args: argparse.Namespace) -> HostSession:
    """A session for ``--uri``; the URI and TLS options are checked before any secret is asked for."""
    uri = _option(args, "uri")
    if not uri:
        raise ConfigError(f"{args.command} needs --uri URI (ws://HOST, wss://HOST or ws+unix://PATH)")
    try:
        endpoint = Endpoint.parse(uri)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tls = tls_policy(args)
    name = endpoint.unix_path or endpoint.host
    return HostSession(name, uri, read_credentials(args, name), tls=tls)


def tls_policy(args: argparse.Namespace) -> TLSPolicy:
    """--insecure turns verification off explicitly; a pin or a CA file narrows trust."""
    chosen = [flag for flag, name in (("--insecure", "insecure"), ("--tls-fingerprint", "tls_fingerprint"),
                                      ("--ca-file", "ca_file")) if _option(args, name)]
    if len(chosen) > 1:
        raise ConfigError(f"choose one of {', '.join(chosen)}")
    if _option(args, "insecure"):
        return TLSPolicy(verify=False)
    if _option(args, "tls_fingerprint"):
        return TLSPolicy(fingerprint=_fingerprint(args.tls_fingerprint))
    if _option(args, "ca_file"):
        if not os.path.isfile(args.ca_file):
            raise ConfigError(f"--ca-file {args.ca_file}: no such file")
        return TLSPolicy(ca_file=args.ca_file)
    return TLSPolicy()


def _fingerprint(text: str) -> str:
    value = text.strip().lower().removeprefix("sha256:").replace(":", "")
    if not _FINGERPRINT.fullmatch(value):
        raise ConfigError(f"--tls-fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return value


# -- secrets ---------------------------------------------------------------------------
def read_credentials(args: argparse.Namespace, host: str) -> Credentials:
    """Find at most one secret, in the documented order, and wrap it at once."""
    given = [name for name in _EXPLICIT_SECRETS if _option(args, name)]
    if len(given) > 1:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"give one secret, not several ({flags})")
    user = _option(args, "username")
    kind, secret = _explicit_secret(args, given[0]) if given else _default_secret(user, host)
    if kind == "password" and not user:
        raise ConfigError("a password login needs -U USER")
    if secret is not None:
        _check_readable(secret)
    return Credentials(user, secret if kind == "password" else None, secret if kind == "api_key" else None)


def _explicit_secret(args: argparse.Namespace, name: str) -> tuple[str, Secret]:
    value = getattr(args, name)
    if name == "password_env":
        return "password", Secret.env(value)
    if name == "api_key_env":
        return "api_key", Secret.env(value)
    if name == "password_file":
        return "password", Secret.file(value)
    if name == "api_key" and value != "-" and os.path.exists(value):
        return "api_key", Secret.file(value)
    label = "password" if name == "password" else "API key"
    return name, _stdin_secret(label) if value == "-" else _literal_secret(name, value)


def _default_secret(user: str | None, host: str) -> tuple[str, Secret | None]:
    """$FLEETCLT_API_KEY, then $FLEETCLT_PASSWORD; a user with neither is prompted."""
    if os.environ.get(API_KEY_ENV):
        return "api_key", Secret.env(API_KEY_ENV)
    if os.environ.get(PASSWORD_ENV):
        return "password", Secret.env(PASSWORD_ENV)
    if user:
        return "password", _prompt(f"Password for {user}@{host}: ")
    return "none", None


def _literal_secret(name: str, value: str) -> Secret:
    secret = Secret(value)
    flag, env = ("-P", PASSWORD_ENV) if name == "password" else ("-K", API_KEY_ENV)
    print(f"fleetclt: warning: the secret given with {flag} is visible in the process list; "
          f"use {flag} - (stdin), a file or ${env} instead", file=sys.stderr)
    return secret


def _stdin_secret(label: str) -> Secret:
    """The first line of piped stdin, or a prompt when stdin is a terminal."""
    if sys.stdin.isatty():
        return _prompt(f"{label.capitalize()}: ")
    line = sys.stdin.readline()
    secret = Secret(line[:-2] if line.endswith("\r\n") else line.removesuffix("\n"))
    if not line.strip():
        raise ConfigError(f"no {label} on stdin (expected it on the first line)")
    return secret


def _prompt(text: str) -> Secret:
    if not _has_terminal():
        raise ConfigError("no secret given and no terminal to ask on; use -P -, --password-file PATH, "
                          f"--password-env NAME or ${PASSWORD_ENV}")
    try:
        return Secret(getpass.getpass(text))
    except EOFError:
        raise ConfigError("no secret entered") from None


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        return False
    return True


def _secret_on_stdin(args: argparse.Namespace) -> bool:
    return "-" in (_option(args, "password"), _option(args, "api_key")) and not sys.stdin.isatty()


def _check_readable(secret: Secret) -> None:
    """Fail now, with exit 1, if an env variable or file secret cannot be read."""
    secret.reveal()
