"""Renderers for the command line: results on stdout, errors and progress on stderr.

stdout only ever carries data (a raw scalar or JSON), so ``fleetclt call ... | jq``
works; every human message goes to stderr, because JSON mixed with text breaks every
consumer (the output contract: docs/cli.md). JSON keeps the server's key order and writes what ejson
decoded into Python values as plain JSON: datetimes, dates and times as ISO 8601
strings, sets as lists, interfaces as strings.
"""
from __future__ import annotations

import datetime as dt
import errno as errno_codes
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

import orjson
import yaml

from ..errors import FleetError, JobFailed, RemoteCallError, ValidationError, without_host
from ..protocol.ejson import plain
from ..protocol.jsonrpc import CollectionUpdate
from ..protocol.redact import UNASKED_FIELDS, mask_unasked

if TYPE_CHECKING:
    from ..fleet.results import FleetResult, HostResult

# JSON-RPC codes that come without an errname (docs/protocol.md §3).
_CODE_NAMES = {-32700: "PARSE_ERROR", -32600: "INVALID_REQUEST", -32601: "METHOD_NOT_FOUND",
               -32602: "EINVAL", -32000: "TOO_MANY_CONCURRENT_CALLS"}
_BAR_WIDTH = 30


# -- data -------------------------------------------------------------------------
def to_json(value: Any, *, indent: bool = True) -> str:
    """JSON text of a decoded ejson value; indent 2 for humans, one line for streams. A credential
    nobody asked for (a TOTP provisioning URI) is masked: looked for only when its name is there."""
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    text = orjson.dumps(value, default=plain, option=option)
    if any(f'"{name}"'.encode() in text for name in UNASKED_FIELDS):
        text = orjson.dumps(mask_unasked(value), default=plain, option=option)
    return text.decode()


def render_result(value: Any) -> str:
    """Strings and numbers raw (as midclt prints them), dates as ISO, the rest as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    return to_json(value)


def to_yaml(value: Any) -> str:
    """YAML of a decoded value (through JSON, so dates and sets read the same as in json output)."""
    return yaml.safe_dump(orjson.loads(to_json(value, indent=False)), sort_keys=False, allow_unicode=True)


FORMATS = ("table", "json", "jsonl", "yaml")


def output_format(requested: str | None) -> str:
    """The -o asked for; unasked, a table for a person at a terminal and json for a program."""
    return requested or ("table" if sys.stdout.isatty() else "json")


def print_document(document: Any, fmt: str) -> None:
    """A whole json or yaml document on stdout."""
    print(to_yaml(document) if fmt == "yaml" else to_json(document), end="\n" if fmt != "yaml" else "", flush=True)


def fleet_table(result: FleetResult, elapsed: float, width: int = 100) -> str:
    """One line per host, then a recap line; RESULT cut at `width` characters, with an ellipsis."""
    rows = [(name, host.status.value, f"{host.elapsed * 1000:.0f}ms", _cell(host)) for name, host in result.items()]
    counts = ", ".join(f"{len(names)} {status.value}" for status, names in result.by_status().items())
    recap = f"recap: {counts} ({len(result)} hosts, {elapsed:.2f} s)"
    return "\n".join([*table(("HOST", "STATUS", "TIME", "RESULT"), rows, right=(2,), width=width), recap])


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Sequence[int] = (),
          width: int = 100) -> list[str]:
    """Columns as wide as their longest cell (a 30-character host name or `reboot_required` fits);
    the last column is cut at `width` characters with an ellipsis, so a cut never passes for the value."""
    widths = [max(len(row[index]) for row in (header, *rows)) for index in range(len(header) - 1)]
    lines = []
    for row in (header, *rows):
        cells = [cell.rjust(size) if index in right else cell.ljust(size)
                 for index, (cell, size) in enumerate(zip(row[:-1], widths, strict=True))]
        last = row[-1] if len(row[-1]) <= width else row[-1][:width - 1] + "…"
        lines.append("  ".join([*cells, last]).rstrip())
    return lines


def _cell(host: HostResult) -> str:
    if host.ok:
        return render_result(host.result).replace("\n", " ") if not isinstance(host.result, (dict, list)) \
            else to_json(host.result, indent=False)
    return without_host(host.error) if host.error is not None else ""


def render_event(update: CollectionUpdate) -> str:
    """One event as one JSON line."""
    return to_json({"msg": update.msg, "collection": update.collection, "id": update.id,
                    "fields": update.fields}, indent=False)


# -- errors -------------------------------------------------------------------------
def error_lines(exc: FleetError) -> list[str]:
    """``NAME: reason`` and, for validation errors, one ``attribute: message`` line per item.

    The host name is left out: the single-host CLI has one, fleet output prefixes it.
    """
    if isinstance(exc, RemoteCallError):
        return _remote_error_lines(exc)
    if isinstance(exc, JobFailed):
        return [_job_error_line(exc)]
    return [f"{type(exc).__name__}: {without_host(exc)}"]


def _remote_error_lines(exc: RemoteCallError) -> list[str]:
    name = exc.errname or _errno_name(exc.errno) or _CODE_NAMES.get(exc.code, "ERROR")
    items = _validation_items(exc.extra) if isinstance(exc, ValidationError) else []
    if items:
        return [f"{name}: validation failed", *items]
    return [f"{name}: {_strip_errname(exc.reason or without_host(exc), name)}"]


def _validation_items(extra: Any) -> list[str]:
    if not isinstance(extra, list):
        return []
    lines = []
    for item in extra:
        if isinstance(item, (list, tuple)) and len(item) >= 2:
            attribute, message = item[0], str(item[1])
            lines.append(f"{attribute}: {message}" if attribute else message)
    return lines


def _job_error_line(exc: JobFailed) -> str:
    job = exc.job
    raw_info = job.get("exc_info")
    info: dict[str, Any] = raw_info if isinstance(raw_info, dict) else {}
    name = _errno_name(info.get("errno")) or str(job.get("state") or "JobFailed")
    reason = str(job.get("error") or without_host(exc)).strip()
    return f"{name}: {_strip_errname(reason, name)}"


def _errno_name(number: Any) -> str | None:
    return errno_codes.errorcode.get(number) if isinstance(number, int) else None


def _strip_errname(reason: str, name: str) -> str:
    """'[EIO] disk gone' under the name EIO reads 'disk gone'."""
    reason = reason.strip()
    return reason.removeprefix(f"[{name}]").strip() or reason


def print_error(exc: FleetError, trace: bool = False, stream: TextIO | None = None) -> None:
    """Write the error lines to stderr; with `trace`, also the server's formatted traceback."""
    stream = stream or sys.stderr
    for line in error_lines(exc):
        print(line, file=stream)
    formatted = _server_trace(exc) if trace else None
    if formatted:
        print(formatted.rstrip("\n"), file=stream)


def _server_trace(exc: FleetError) -> str | None:
    if isinstance(exc, RemoteCallError) and isinstance(exc.trace, dict):
        return exc.trace.get("formatted")
    if isinstance(exc, JobFailed):
        return exc.job.get("exception")
    return None


# -- progress -----------------------------------------------------------------------
def _progress(job: dict[str, Any]) -> tuple[Any, str]:
    raw = job.get("progress")
    progress: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return progress.get("percent"), str(progress.get("description") or "")


class DescriptionProgress:
    """Each new progress description on its own line (for logs and systemd)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream, self._last = stream, ""

    def __call__(self, job: dict[str, Any]) -> None:
        _, description = _progress(job)
        if description and description != self._last:
            self._last = description
            print(description, file=self._stream, flush=True)

    def finish(self) -> None:
        """Nothing to tidy: every line is complete."""


class ProgressBar:
    """A bar redrawn in place with carriage returns; `finish()` ends its line."""

    def __init__(self, stream: TextIO) -> None:
        self._stream, self._drawn = stream, False

    def __call__(self, job: dict[str, Any]) -> None:
        percent, description = _progress(job)
        share = min(max(float(percent or 0), 0.0), 100.0)
        filled = int(_BAR_WIDTH * share / 100)
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        self._stream.write(f"\r[{bar}] {share:5.1f}% {description[:40]:<40}")
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()


def progress_reporter(mode: str | None, stream: TextIO | None = None) -> DescriptionProgress | ProgressBar | None:
    """The reporter for ``-jp MODE``; without a mode, a bar only when `stream` is a terminal."""
    stream = stream or sys.stderr
    if mode is None:
        mode = "progressbar" if stream.isatty() else None
    if mode == "description":
        return DescriptionProgress(stream)
    return ProgressBar(stream) if mode == "progressbar" else None
