"""A call's arguments as written on the command line (midclt's rule) or piped in as a JSON array."""
from __future__ import annotations

from typing import Any, TextIO

from ..errors import ConfigError
from ..protocol import ejson


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
