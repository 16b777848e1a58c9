"""Websocket frames (RFC 6455 section 5) without a parser object: the common case, fast.

Nearly every TrueNAS reply is one small, unmasked, unfragmented text frame.
FrameSplitter decodes those itself and hands every other frame on whole, as
raw bytes, to the full parser (wsproto in the transport): that parser's buffer
is then empty between frames, so its verdicts and close codes stay its own.
Outgoing text frames are built here too (docs/performance.md §3 explains both).
"""
from __future__ import annotations

import os
import struct

FAST_FRAME_LIMIT = 1 << 20  # larger frames go to the full parser, which streams them

_SHORT_HEADER, _MEDIUM_HEADER, _LONG_HEADER = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")
_TEXT_FINAL = 0x81
_MASKED = 0x80


class _MaskingKeys:
    """4-byte masking keys cut from one os.urandom read per 1,024 frames: the strong source
    RFC 6455 section 10.3 asks for, without a system call per frame."""

    BATCH = 4096

    def __init__(self) -> None:
        self._pool, self._next = b"", 0

    def take(self) -> bytes:
        start = self._next
        if start >= len(self._pool):
            self._pool, start = os.urandom(self.BATCH), 0
        self._next = start + 4
        return self._pool[start:start + 4]


_masking_keys = _MaskingKeys()


def text_frame(payload: bytes) -> bytes:
    """A complete, masked client text frame, byte for byte what wsproto would build.

    The XOR with the mask is one big-int operation instead of per-byte work.
    """
    size = len(payload)
    if size < 126:
        header = _SHORT_HEADER.pack(_TEXT_FINAL, _MASKED | size)
    elif size < 65536:
        header = _MEDIUM_HEADER.pack(_TEXT_FINAL, _MASKED | 126, size)
    else:
        header = _LONG_HEADER.pack(_TEXT_FINAL, _MASKED | 127, size)
    key = _masking_keys.take()
    mask = int.from_bytes((key * (size // 4 + 1))[:size], "big")
    return header + key + (int.from_bytes(payload, "big") ^ mask).to_bytes(size, "big")


def frame_bounds(data: bytes, start: int) -> tuple[int, int] | None:
    """(payload start, frame end) of the frame at `start`; None while its header is incomplete.

    The end may lie beyond `data`: the frame is then still arriving.
    """
    if len(data) - start < 2:
        return None
    second = data[start + 1]
    length, position = second & 0x7F, start + 2
    if length >= 126:
        width = 2 if length == 126 else 8
        if len(data) < position + width:
            return None
        length = int.from_bytes(data[position:position + width], "big")
        position += width
    if second & _MASKED:  # servers must not mask; the full parser will say so
        position += 4
    return position, position + length


class FrameSplitter:
    """Received bytes in; whole frames out: a str for a text message decoded here, else raw bytes.

    After a frame larger than the limit, everything from it on is returned as
    bytes and `bypassed` is set: the caller gives the connection to the full
    parser for good (it streams big messages and enforces their size limit).
    """

    def __init__(self) -> None:
        self._rest = b""
        self._mid_message = False  # inside a fragmented message: its frames all go to the parser
        self.bypassed = False

    def feed(self, data: bytes, limit: int) -> list[str | bytes]:
        """Every complete frame in what has arrived so far; a partial one waits for more."""
        data = self._rest + data if self._rest else data
        out: list[str | bytes] = []
        start = 0
        while (bounds := frame_bounds(data, start)) is not None:
            body, end = bounds
            if end - body > min(FAST_FRAME_LIMIT, limit):
                self.bypassed, self._rest = True, b""
                out.append(data[start:])
                return out
            if end > len(data):
                break
            out.append(self._frame(data, start, body, end))
            start = end
        self._rest = data[start:]
        return out

    def take_rest(self) -> bytes:
        """The bytes of an incomplete frame (at the end of the stream: the parser judges them)."""
        rest, self._rest = self._rest, b""
        return rest

    def _frame(self, data: bytes, start: int, body: int, end: int) -> str | bytes:
        first = data[start]
        if first == _TEXT_FINAL and not self._mid_message and not data[start + 1] & _MASKED:
            try:
                return data[body:end].decode()
            except UnicodeDecodeError:
                pass  # the parser fails the connection with 1007
        if first & 0x0F < 3:  # a data frame: continuation, text or binary
            self._mid_message = not first & 0x80
        return data[start:end]
