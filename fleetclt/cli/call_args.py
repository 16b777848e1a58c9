"""A call's arguments as written on the command line (midclt's rules) or given as one JSON array."""
from __future__ import annotations

import argparse
from typing import Any, TextIO

from ..errors import ConfigError
from ..protocol import ejson

STDIN = "-"


def add_call_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """METHOD, ARG ... and --args-json, the same for `call`, `fleetclt call` and `rollout`."""
    parser.add_argument("method", metavar="METHOD", nargs=None if required else "?")
    parser.add_argument("args", nargs="*", metavar="ARG",
                        help="JSON if it parses, else a string; each - is one argument read from stdin (as midclt)")
    parser.add_argument("--args-json", metavar="ARRAY|-",
                        help="more arguments as one JSON array, after any ARGs (- reads the array from stdin)")


def parse_arg(text: str) -> Any:
    """midclt's rule: an argument is JSON when it parses, else the string itself."""
    try:
        return ejson.loads(text)
    except ejson.DecodeError:
        return text


def reads_stdin(args: argparse.Namespace) -> bool:
    """True when the arguments come, in part, from stdin."""
    return STDIN in (args.args or []) or args.args_json == STDIN


def call_params(args: argparse.Namespace, stdin: TextIO) -> list[Any]:
    """The parameters: ARGs, each ``-`` being stdin's whole text (as midclt), then --args-json's array.

    midclt reads stdin once and gives every ``-`` the same value: JSON when it
    parses, else the text exactly as read.
    """
    raw: list[str] = args.args or []
    if STDIN in raw and args.args_json == STDIN:
        raise ConfigError("stdin can feed either - arguments or --args-json -, not both")
    text = _read(stdin) if reads_stdin(args) else ""
    params = [parse_arg(text) if arg == STDIN else parse_arg(arg) for arg in raw]
    if args.args_json is not None:
        params += _array(text if args.args_json == STDIN else args.args_json)
    return params


def _read(stdin: TextIO) -> str:
    if stdin.isatty():
        raise ConfigError("refusing to read arguments from a terminal: pipe them into stdin")
    return stdin.read()


def _array(text: str) -> list[Any]:
    try:
        value = ejson.loads(text)
    except ejson.DecodeError as exc:
        raise ConfigError(f"--args-json is not JSON: {exc}") from None
    if not isinstance(value, list):
        raise ConfigError(f"--args-json must be a JSON array of arguments, not a {type(value).__name__}")
    return value
