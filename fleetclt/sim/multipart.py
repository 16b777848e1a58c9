"""A streaming multipart/form-data reader, as aiohttp's MultipartReader reads /_upload.

The handler asks for one part at a time (`next_part`), reads a small part
whole (the `data` JSON) and a file part in chunks as they arrive, so an
image of gigabytes passes through without being held. A part left unread is
skipped when the next is asked for. A body that breaks the framing raises
MultipartError, which aiohttp turns into a 500.
"""
from __future__ import annotations

import re
from collections.abc import Callable

CHUNK = 256 * 1024
_NAME = re.compile(r';\s*name="([^"]*)"')
_FILENAME = re.compile(r';\s*filename="([^"]*)"')
_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))')


class MultipartError(ValueError):
    """The body is not the multipart its headers announced."""


def boundary_of(content_type: str) -> str:
    """The boundary of a multipart Content-Type; MultipartError (a 500 from aiohttp) otherwise."""
    if not content_type.lower().startswith("multipart/"):
        raise MultipartError("multipart/* content type expected")
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise MultipartError("no boundary in the multipart content type")
    boundary = found[1] or found[2]
    if len(boundary) > 70:
        raise MultipartError(f"Invalid boundary {boundary!r}, it should not be longer than 70 characters")
    return boundary


class Part:
    """One part: its form name and filename, its content read in chunks."""

    def __init__(self, stream: MultipartStream, headers: dict[str, str]) -> None:
        self._stream = stream
        disposition = headers.get("content-disposition", "")
        name, filename = _NAME.search(disposition), _FILENAME.search(disposition)
        self.name = name[1] if name else None
        self.filename = filename[1] if filename else None
        self.ended = False

    def read_chunk(self) -> bytes:
        """The next piece of the content; b"" once it has all been read."""
        if self.ended:
            return b""
        data, self.ended = self._stream.content()
        return data

    def read(self) -> bytes:
        """The whole content (for the small `data` part)."""
        pieces = []
        while piece := self.read_chunk():
            pieces.append(piece)
        return b"".join(pieces)

    def drain(self) -> None:
        while self.read_chunk():
            pass


class MultipartStream:
    """Parts from a byte source (`read(n)`: b"" at its end)."""

    def __init__(self, read: Callable[[int], bytes], boundary: str) -> None:
        self._read = read
        self._delimiter = b"--" + boundary.encode("latin-1")
        self._separator = b"\r\n" + self._delimiter
        self._buffer = bytearray()
        self._started = False
        self._finished = False
        self._current: Part | None = None

    def next_part(self) -> Part | None:
        """The next part, or None after the closing delimiter."""
        if self._current is not None:
            self._current.drain()
            self._current = None
        if self._finished:
            return None
        if not self._started:
            self._skip_preamble()
            self._started = True
        self._need(2)
        if self._buffer[:2] == b"--":
            self._finished = True
            return None
        if self._buffer[:2] != b"\r\n":
            raise MultipartError("a delimiter is not followed by a line break")
        del self._buffer[:2]
        self._current = Part(self, self._headers())
        return self._current

    def content(self) -> tuple[bytes, bool]:
        """The current part's next bytes, and whether they are its last (its delimiter was consumed)."""
        keep = len(self._separator) - 1
        while True:
            end = self._buffer.find(self._separator)
            if end >= 0:
                data = bytes(self._buffer[:end])
                del self._buffer[:end + len(self._separator)]
                return data, True
            if len(self._buffer) > keep:
                data = bytes(self._buffer[:-keep])
                del self._buffer[:-keep]
                return data, False
            self._fill("inside a part")

    def _skip_preamble(self) -> None:
        while True:
            start = self._buffer.find(self._delimiter)
            if start >= 0:
                del self._buffer[:start + len(self._delimiter)]
                return
            self._fill("before its first delimiter")

    def _headers(self) -> dict[str, str]:
        while (end := self._buffer.find(b"\r\n\r\n")) < 0:
            if len(self._buffer) > 8192:
                raise MultipartError("part headers over 8 kB")
            self._fill("inside part headers")
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[:end + 4]
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return headers

    def _need(self, count: int) -> None:
        while len(self._buffer) < count:
            self._fill("after a delimiter")

    def _fill(self, where: str) -> None:
        data = self._read(CHUNK)
        if not data:
            raise MultipartError(f"the body ended {where}")
        self._buffer += data
