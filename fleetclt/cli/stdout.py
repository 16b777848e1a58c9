"""stdout for the whole run: a reader that goes away (`| head`) or a full disk never becomes a traceback.

A write that fails is remembered, and every later write (the exit-time flush
included) goes to /dev/null, so the run finishes as it would have: every host's
result is still recorded for `@failed`, and nothing is left half-done because
the reader stopped reading. cli/main.py then decides: a closed pipe is quiet (it
is what `head` does on purpose), any other failure is one line and exit 1.
"""
from __future__ import annotations

import contextlib
import errno
import os
import sys
from collections.abc import Iterator
from typing import Any, TextIO


class GuardedStdout:
    """Wraps sys.stdout; `error` is the first write failure, None while all is well."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.error: OSError | None = None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._failed(exc)
        return len(text)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._failed(exc)

    @property
    def reader_gone(self) -> bool:
        """The reader closed the pipe: nobody wants more output, and that is no error."""
        return self.error is not None and self.error.errno == errno.EPIPE

    def _failed(self, exc: OSError) -> None:
        """Send the rest, buffered bytes included, to /dev/null so that the exit-time flush cannot fail too."""
        self.error = exc
        with contextlib.suppress(OSError, ValueError):  # ValueError: a stream with no file descriptor
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def guarded() -> Iterator[GuardedStdout]:
    """sys.stdout guarded for the length of the block (one CLI run), then the original again."""
    original = sys.stdout
    guard = GuardedStdout(original)
    sys.stdout = guard  # duck-typed: print() needs write and flush
    try:
        yield guard
    finally:
        guard.flush()
        sys.stdout = original


def lost() -> bool:
    """True once stdout failed: a loop that only prints (subscribe) can stop."""
    return isinstance(sys.stdout, GuardedStdout) and sys.stdout.error is not None
