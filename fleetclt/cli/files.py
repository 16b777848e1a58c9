"""`fleetclt download`, `backup` and `upload`: files from and to every host, printed like any fan-out.

Per-host status and result (path, size, sha256; for an upload the job id,
bytes and the job's result) follow the fleet output contract of docs/cli.md;
the files themselves are docs/files.md's. `upload ... config.upload` reboots
every host it restores, so it asks first (or takes --yes).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import ConfigError
from ..fleet.backup import backup
from ..fleet.files import download
from ..fleet.fleet import Fleet
from ..fleet.results import FleetResult, ResultCallback
from ..fleet.upload import upload
from ..protocol.files import DEFAULT_TEMPLATE, check_template
from ..protocol.multipart import MAX_FILES
from .argtypes import byte_rate, count
from .call_args import add_call_arguments, call_params, reads_stdin
from .fleet import add_fleet_options, fan_out, selection

COMMANDS = ("download", "backup", "upload")
REBOOTING = frozenset({"config.upload"})  # methods whose job reboots the host


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
    send: argparse.ArgumentParser = commands.add_parser(
        "upload", help="send a file into a job on every host (POST /_upload: config.upload, update.file)",
        description="Upload PATH into METHOD as a job on every host and wait for each job; config.upload "
                    "restores a configuration and reboots the host.")
    add_fleet_options(send)
    send.add_argument("--file", required=True, action="append", metavar="PATH",
                      help=f"the file to send (repeat for several, up to {MAX_FILES}, where the host takes them)")
    send.add_argument("--rate", type=byte_rate, metavar="BYTES/S",
                      help="cap the bandwidth of all uploads together, e.g. 50M (K, M, G: powers of 1024)")
    send.add_argument("--yes", action="store_true", help="do not ask before a method that reboots the host")
    add_call_arguments(send)


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
    if args.command == "upload":
        return _upload(args)
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


def _upload(args: argparse.Namespace) -> int:
    params = call_params(args, sys.stdin)
    if args.method in REBOOTING and not args.yes:
        _confirm(args)

    def send_all(fleet: Fleet, names: list[str], on_result: ResultCallback) -> FleetResult:
        return upload(fleet, args.method, *params, files=args.file, hosts=names, rate=args.rate,
                      deadline=args.deadline, on_result=on_result)
    return fan_out(args, args.method, send_all)


def _confirm(args: argparse.Namespace) -> None:
    """Ask on the terminal before a rebooting upload; with no terminal, --yes is the only way."""
    _, names = selection(args)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    if not (sys.stdin.isatty() and sys.stderr.isatty()) or reads_stdin(args):
        raise ConfigError(f"{args.method} reboots every host it is sent to ({shown}): give --yes to go ahead")
    print(f"{args.method} will replace the configuration of {len(names)} host(s) ({shown}) and reboot "
          "them. Continue? [y/N] ", end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise ConfigError("not confirmed: nothing was sent")
