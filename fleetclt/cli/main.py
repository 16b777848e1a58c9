"""The `fleetclt` command line.

The library never touches process-wide state; this module is where signal
handling, logging set-up and the GC settings live. It does not monkey-patch:
fleetclt uses gevent's socket and ssl modules directly, so nothing needs patching.

Exit codes: ExitStatus in status.py, documented in docs/cli.md.
"""
from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn

import gevent

from .. import __version__
from ..client.tls import server_fingerprint
from ..errors import ConfigError, FleetError
from ..protocol.endpoint import BadEndpoint, Endpoint
from . import agent as agent_cli
from . import files as files_cli
from . import fleet as fleet_cli
from . import modes, options, single, stdout
from . import rollout as rollout_cli
from .commands import add_commands
from .status import ExitStatus
from .waits import announce_waits


class _Parser(argparse.ArgumentParser):
    """Usage errors exit 1 ("nothing ran"); 2 means some hosts of a fan-out were not ok."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.FAILED, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="fleetclt", description="Drive a fleet of TrueNAS hosts over persistent JSON-RPC sessions.",
        epilog="fleet mode: fleetclt call --hosts all system.info (hosts from the inventory); "
               "one host, midclt style: fleetclt --uri wss://nas01 -U admin -P - call system.info")
    parser.add_argument("--version", action="version", version=f"fleetclt {__version__}")
    parser.add_argument("-i", "--inventory", metavar="PATH",
                        help="inventory file (default: $FLEETCLT_INVENTORY, else ./inventory.yaml)")
    parser.add_argument("--debug", action="store_true",
                        help="log protocol details on stderr, and the server's traceback of a failed call")
    options.add_connection_options(parser, nested=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_commands(commands)
    fleet_cli.add_hosts_command(commands)
    files_cli.add_commands(commands)
    rollout_cli.add_rollout_command(commands)
    agent_cli.add_agent_command(commands)
    fingerprint = commands.add_parser(
        "fingerprint", help="print a host's TLS certificate fingerprint, to pin it (tls_fingerprint)")
    fingerprint.add_argument("target", metavar="URI|HOST[:PORT]")
    from .demo import add_arguments as demo_arguments
    from .sim import add_arguments as sim_arguments
    demo_arguments(commands.add_parser("demo", help="boot a simulated fleet and drive it"))
    sim_arguments(commands.add_parser(
        "sim", help="serve simulated TrueNAS hosts on loopback until interrupted",
        description="Serve simulated TrueNAS hosts: --count N new ones, or every loopback host of -i INVENTORY."))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point: whatever happens, one line on stderr and an exit code of docs/cli.md's table."""
    if sys.stdout is None:  # started with stdout closed (`>&-`): every result would vanish unseen
        _say("stdout is closed: there is nowhere to write the output")
        return ExitStatus.FAILED
    with stdout.guarded() as out:
        code = _run(argv)
    if out.error is not None and not out.reader_gone:  # a reader that left (`| head`) is no failure
        _say(f"cannot write the output: {out.error.strerror or out.error}")
        return ExitStatus.FAILED
    return code


def _run(argv: Sequence[str] | None) -> int:
    debug = False
    try:
        parser = build_parser()
        args, extras = parser.parse_known_args(argv)
        if extras:
            modes.refuse_misplaced(parser, args, extras)
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        debug = args.debug
        # Each greenlet would keep the stack that spawned it: at thousands of hosts, many
        # more objects for the cyclic GC to rescan as the heap grows (docs/performance.md §1).
        gevent.config.track_greenlet_tree = False
        # What exists by now (modules, classes, the parser) lives until exit: frozen, the
        # cyclic GC never rescans it (docs/performance.md §1).
        gc.freeze()
        logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")
        announce_waits(args.debug)  # "waiting 6 s for nas003's login budget"
        handle_interrupts()
        modes.check(args)
        return _dispatch(args)
    except FleetError as exc:
        _say(str(exc))
    except KeyboardInterrupt:
        return ExitStatus.INTERRUPTED
    except OSError as exc:  # the machine said no: a port in use, a file that cannot be written
        _say(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except Exception as exc:  # a bug: still one line, and --debug shows where
        if debug:
            traceback.print_exc()
        _say(f"internal error: {type(exc).__name__}: {exc}" + ("" if debug else " (--debug shows where)"))
    return ExitStatus.FAILED


def _say(message: str) -> None:
    if sys.stderr is not None:
        print(f"fleetclt: {message}", file=sys.stderr, flush=True)


_interrupts_handled = False


def handle_interrupts() -> None:
    """Ctrl-C raises KeyboardInterrupt in the main greenlet (exit 130) at once, quietly.

    Quietly: the hub no longer prints it with a timestamp first. At once: every
    signal wakes gevent's loop. Python's C handler only sets a flag; the hub checks it between loop
    iterations. A signal that lands just before the loop enters epoll_wait, or
    in another thread (gevent's resolver pool), left the flag unread until the
    next timer, 25 s away for an idle `subscribe`. Python's wake-up fd closes
    that gap: the C handler also writes a byte to a pipe the loop watches.
    """
    global _interrupts_handled
    if _interrupts_handled:  # main() run again in one process (tests): the watcher is in place
        return
    _interrupts_handled = True
    hub = gevent.get_hub()
    hub.NOT_ERROR = (*hub.NOT_ERROR, KeyboardInterrupt)
    read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    watcher = hub.loop.io(read_end, 1, ref=False)  # never keeps the program alive alone
    watcher.start(_drain, read_end)


def _drain(fd: int) -> None:
    """Empty the wake-up pipe; running any Python code here lets the hub raise the pending signal."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "hosts":
        return fleet_cli.run_hosts(args)
    if args.command == "rollout":
        return rollout_cli.run(args)
    if args.command in files_cli.COMMANDS:
        return files_cli.run(args)
    if args.command == "fingerprint":
        return _fingerprint(args.target)
    if args.command == "agent":
        return agent_cli.run(args)
    if args.command == "call" and not args.method:
        raise ConfigError("call needs METHOD, the method to call: fleetclt call --hosts all system.info")
    if modes.is_fleet(args):
        return (fleet_cli.run_call if args.command == "call" else fleet_cli.run_ping)(args)
    if args.command in single.COMMANDS:
        return single.run(args)
    if args.command == "sim":
        from .sim import run as serve
        return serve(args, args.sim_inventory or args.inventory)
    from .demo import run as demo
    return demo(args)


def _fingerprint(target: str) -> int:
    """Trust on first use, made explicit: show the fingerprint, never store it silently."""
    try:
        endpoint = Endpoint.parse(target if "//" in target else f"wss://{target}")
    except BadEndpoint as exc:
        raise ConfigError(f"fingerprint {target!r}: {exc.reason}") from None
    print(server_fingerprint(endpoint.host, endpoint.port))
    print("check it on the host (System > Certificates), then pin it: tls_fingerprint: <the line above>",
          file=sys.stderr)
    return ExitStatus.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
