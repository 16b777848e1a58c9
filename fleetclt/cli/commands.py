"""The parsers of `call`, `ping` and `subscribe`: fleet mode first, then one host, each flag under its mode.

`call` and `ping` work in two modes (docs/cli.md): `--hosts PATTERN` fans out
over the inventory, `--uri URI` works on one host as midclt does. The help
shows the fleet options first and the one-host ones apart, and cli/modes.py
refuses a flag given in the mode it does not belong to.
"""
from __future__ import annotations

import argparse
from typing import Any

from .agent_client import add_agent_option
from .argtypes import count, seconds
from .call_args import add_call_arguments
from .fleet import add_concurrency_options, add_fleet_options, add_hosts_option
from .options import add_connection_options

FAN_OUT_COMMANDS = ("call", "ping")


def add_commands(commands: Any) -> None:
    """Register call, ping and subscribe on the top-level subparsers action."""
    call = _fan_out_parser(
        commands, "call", help="call a method on the hosts --hosts selects, or on one --uri host (as midclt)",
        description="Call METHOD on every host --hosts PATTERN selects from the inventory, at once; or, "
                    "midclt style, on the one host --uri URI names.")
    call.add_argument("-j", "--job", action="store_true", help="wait for the job the method starts")
    call.add_argument("-jp", "--job-print", choices=("progressbar", "description"),
                      help="one host only: job progress on stderr (implies -j; default: a bar when stderr "
                           "is a terminal)")
    call.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS",
                      help="time limit for each reply (with -j: for the job id only)")
    add_call_arguments(call, required=False)  # a missing METHOD gets its own message (cli/main.py)
    ping = _fan_out_parser(
        commands, "ping", help="log in and round trip on the hosts --hosts selects, or on one --uri host",
        description="Log in and call core.ping on every host --hosts PATTERN selects (with its time, version "
                    "and API dialect), or on the one host --uri URI names.")
    ping.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="time limit for the reply")
    sub = commands.add_parser(
        "subscribe", help="print events as JSON lines: of the hosts --hosts selects, or of one --uri host",
        description="Print the events of EVENT as JSON lines until interrupted: of every host --hosts PATTERN "
                    "selects, each line tagged with its host; or, midclt style, of the one host --uri URI names.")
    fleet = sub.add_argument_group("fleet mode (--hosts PATTERN)", "Hosts, credentials and TLS settings come "
                                   "from the inventory; a host that cannot subscribe gets its failed row and the "
                                   "others stream on.")
    add_hosts_option(fleet)
    add_concurrency_options(fleet)
    add_agent_option(sub)
    add_connection_options(sub, nested=True)
    sub.add_argument("event", metavar="EVENT", help="e.g. core.get_jobs, pool.dataset.query or *")
    sub.add_argument("-n", "--number", type=count, metavar="N", help="exit after N events (of all hosts)")
    sub.add_argument("-t", "--timeout", type=seconds, metavar="SECONDS", help="exit 1 if the events take longer")
    sub.epilog = ("One host: when the server ends the subscription it exits as midclt does, 0 when its source "
                  "finished, 1 with the server's error. Fleet mode: exits when no host is left, 0, or 2 when a "
                  "host could not subscribe or its server ended the subscription with an error.")


def _fan_out_parser(commands: Any, name: str, *, help: str, description: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help, description=description)
    add_fleet_options(parser)
    add_agent_option(parser)
    add_connection_options(parser, nested=True)
    return parser
