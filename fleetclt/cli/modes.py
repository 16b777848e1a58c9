"""Which options apply where: an option that would be ignored is refused, with the reason, before anything runs.

Two modes share `call`, `ping` and `subscribe` (docs/cli.md): fleet mode (`--hosts PATTERN`)
takes every host's address, credentials and TLS settings from the inventory, so
the one-host connection options have nothing to act on there; one-host mode
(`--uri URI`) has no fan-out, so the fleet options have nothing to act on
there. Accepting them silently would let `-U bob` or `--insecure` look as if
they had done something.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable

from ..errors import ConfigError
from .options import option

# argparse dest -> the flag as a user writes it
CONNECTION = {"uri": "--uri", "username": "-U", "password": "-P", "api_key": "-K",
              "password_file": "--password-file", "password_env": "--password-env",
              "api_key_env": "--api-key-env", "otp_code": "--otp-code", "otp_secret_env": "--otp-secret-env",
              "otp_secret_file": "--otp-secret-file", "allow_plain_api_key": "--allow-plain-api-key",
              "insecure": "--insecure", "tls_fingerprint": "--tls-fingerprint", "ca_file": "--ca-file"}
FLEET = {"output": "-o", "deadline": "--deadline", "forks": "--forks", "max_connecting": "--max-connecting",
         "no_agent": "--no-agent"}
ONE_HOST_ONLY = {**CONNECTION, "job_print": "-jp"}

FAN_OUT_COMMANDS = ("call", "ping")        # fleet mode with --hosts, one host with --uri
EITHER_MODE_COMMANDS = (*FAN_OUT_COMMANDS, "subscribe")
INVENTORY_COMMANDS = ("hosts", "rollout", "download", "backup", "upload")   # always fleet mode

_FROM_INVENTORY = "in fleet mode (--hosts) each host's address, credentials and TLS settings come from the inventory"
_JOB_PRINT = ("-jp draws one job's progress, so it applies to one host (--uri); in fleet mode, "
              "-o jsonl streams each host's result as it ends")


def is_fleet(args: argparse.Namespace) -> bool:
    """Fleet-mode call or ping (--hosts given), or a command that always works from the inventory."""
    return args.command in INVENTORY_COMMANDS or (args.command in FAN_OUT_COMMANDS and _hosts_given(args))


def fleet_mode(args: argparse.Namespace) -> bool:
    """is_fleet, or `subscribe --hosts` (which single.py hands to cli/fleet_events.py)."""
    return is_fleet(args) or (args.command == "subscribe" and _hosts_given(args))


def _hosts_given(args: argparse.Namespace) -> bool:
    return option(args, "hosts") is not None  # --hosts '' is an error, not one-host mode


def check(args: argparse.Namespace) -> None:
    """Refuse the first option given that the command, in its mode, would ignore."""
    if fleet_mode(args):
        _refuse(args, ONE_HOST_ONLY, lambda flag: _JOB_PRINT if flag == "-jp" else
                f"{flag} does not apply: {_FROM_INVENTORY}")
    elif args.command in EITHER_MODE_COMMANDS:
        _refuse(args, FLEET, lambda flag: f"{flag} applies to fleet mode (--hosts PATTERN) only; "
                f"with --uri, {args.command} works on one host")
    else:
        _refuse(args, CONNECTION, lambda flag: f"{flag} does not apply to `fleetclt {args.command}`")


def refuse_misplaced(parser: argparse.ArgumentParser, args: argparse.Namespace, extras: list[str]) -> None:
    """A connection option after a command that takes none (`hosts -U bob`): the reason, not
    argparse's usage screen. Before the command it is parsed, and check() refuses it the same way."""
    flag = extras[0].split("=", 1)[0]
    known = {string for action in parser._actions if action.dest in CONNECTION for string in action.option_strings}
    if flag in known:
        raise ConfigError(f"{flag} does not apply to `fleetclt {args.command}`"
                          + (f": {_FROM_INVENTORY}" if args.command in INVENTORY_COMMANDS else ""))


def _refuse(args: argparse.Namespace, flags: dict[str, str], reason: Callable[[str], str]) -> None:
    for dest, flag in flags.items():
        if _given(option(args, dest)):
            raise ConfigError(reason(flag))


def _given(value: object) -> bool:
    """Unset options are None (False for a switch); an empty string given on purpose still counts."""
    return value is not None and value is not False
