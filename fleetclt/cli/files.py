"""`fleetclt download` and `fleetclt backup`: files from every host, printed like any fan-out.

Per-host status and result (path, size, sha256) follow the fleet output
contract of docs/cli.md; the files themselves are docs/files.md's.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..fleet.backup import backup
from ..fleet.files import download
from ..fleet.fleet import Fleet
from ..fleet.results import FleetResult, ResultCallback
from ..protocol.files import DEFAULT_TEMPLATE, check_template
from .argtypes import count
from .call_args import add_call_arguments, call_params
from .fleet import add_fleet_options, fan_out

COMMANDS = ("download", "backup")


def add_commands(commands: Any) -> None:
    fetch = _command(commands, "download", "run a file-producing job on every host and save each file "
                     "(core.download)", "Run METHOD through core.download on every host and stream each file "
                     "to DIR/<name template>; a file appears under its name only once complete and checked.")
    fetch.add_argument("--name", type=_template, default=DEFAULT_TEMPLATE, metavar="TEMPLATE",
                       help=f"path under DIR ({DEFAULT_TEMPLATE}); fields {{host}} {{filename}} {{job_id}} "
                            "{method} {time}")
    fetch.add_argument("--filename", metavar="NAME",
                       help="the file name asked of the host (default by method: debug.tgz, config.tar, ...)")
    fetch.add_argument("--buffered", action="store_true",
                       help="let the job finish into the host's memory first, then fetch")
    add_call_arguments(fetch)
    keep = _command(commands, "backup", "save every host's configuration (config.save) with a manifest and "
                    "retention", "Save each host's configuration as DIR/<host>/<host>-<time>.tar (0600), "
                    "listed in DIR/manifest.json with its size and sha256.")
    keep.add_argument("--secretseed", action="store_true",
                      help="include the password secret seed (the file then unlocks stored passwords)")
    keep.add_argument("--keep", type=count, metavar="N", help="keep the newest N backups per host")


def _command(commands: Any, name: str, summary: str, description: str) -> argparse.ArgumentParser:
    """A fleet command that writes into --dest DIR."""
    parser: argparse.ArgumentParser = commands.add_parser(name, help=summary, description=description)
    add_fleet_options(parser)
    parser.add_argument("--dest", required=True, metavar="DIR", help="the directory the files go to")
    return parser


def _template(text: str) -> str:
    try:
        return check_template(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    if args.command == "download":
        params = call_params(args, sys.stdin)

        def fetch_all(fleet: Fleet, names: list[str], on_result: ResultCallback) -> FleetResult:
            return download(fleet, args.method, *params, dest=args.dest, hosts=names, template=args.name,
                            filename=args.filename, buffered=args.buffered, deadline=args.deadline,
                            on_result=on_result)
        return fan_out(args, "core.download", fetch_all)

    def back_up(fleet: Fleet, names: list[str], on_result: ResultCallback) -> FleetResult:
        return backup(fleet, args.dest, hosts=names, secretseed=args.secretseed, keep=args.keep,
                      deadline=args.deadline, on_result=on_result)
    return fan_out(args, "config.save", back_up)
