"""The multipart body of a POST to /_upload, framed without touching a file.

The middleware reads a `data` part first (JSON `{"method", "params"}`), then
one `file` part, and from 25.10 up to five (docs/protocol.md §16). Update
images exceed 1 GiB, so the body is never built whole: `pieces()` yields the
framing as bytes and, where a file's content goes, a `FileContent` that stands
for it (its index and size). The caller sends those bytes itself, with the
kernel's help where it can. The total length is known up front from the sizes,
so the request carries a Content-Length that h11 holds the sender to.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FILES = 5  # file_app.py MAX_UPLOADED_FILES (25.10 and later; 24.10 and 25.04 read one)


@dataclass(frozen=True)
class FileContent:
    """Where the content of file number `index` (`size` bytes) goes in the body.

    It has a length, so h11 counts it against Content-Length as it passes through.
    """

    index: int
    size: int

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class UploadFile:
    """One file part: the name it is announced with, and its size."""

    filename: str
    size: int


class MultipartUpload:
    """The body for one upload of `files` into `method(*params)`."""

    def __init__(self, method: str, params: Sequence[Any], files: Sequence[UploadFile],
                 boundary: str | None = None) -> None:
        if not files:
            raise ValueError("an upload needs at least one file")
        if len(files) > MAX_FILES:
            raise ValueError(f"the middleware takes at most {MAX_FILES} files in one upload, not {len(files)}")
        self.boundary = boundary or "fleetclt-" + secrets.token_hex(16)
        self.files = list(files)
        data = json.dumps({"method": method, "params": list(params)}).encode()
        self._data = self._head('name="data"', "application/json") + data + b"\r\n"
        self._file_heads = [self._head(f'name="file"; filename="{_quoted(f.filename)}"', "application/octet-stream")
                            for f in self.files]
        self._end = f"--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    @property
    def length(self) -> int:
        """The body's length in bytes, for Content-Length."""
        framing = len(self._data) + len(self._end) + sum(len(head) + 2 for head in self._file_heads)
        return framing + sum(f.size for f in self.files)

    def pieces(self) -> Iterator[bytes | FileContent]:
        """The body in order: framing as bytes, each file's content as a FileContent."""
        yield self._data
        for index, (head, upload) in enumerate(zip(self._file_heads, self.files, strict=True)):
            yield head
            yield FileContent(index, upload.size)
            yield b"\r\n"
        yield self._end

    def _head(self, disposition: str, content_type: str) -> bytes:
        return (f"--{self.boundary}\r\nContent-Disposition: form-data; {disposition}\r\n"
                f"Content-Type: {content_type}\r\n\r\n").encode()


def _quoted(name: str) -> str:
    """A filename fit for a quoted header parameter: no quotes, backslashes or line breaks."""
    return "".join("_" if ch in '"\\\r\n' or ord(ch) < 32 else ch for ch in name)


def parse_upload_answer(status: int, body: bytes) -> int:
    """The job id of /_upload's 200 answer `{"job_id": N}`; ValueError for anything else."""
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    job_id = answer.get("job_id") if isinstance(answer, dict) else None
    if status == 200 and isinstance(job_id, int) and not isinstance(job_id, bool):
        return job_id
    shown = body[:200].decode("utf-8", "replace").strip()
    said = f": {shown}" if shown else ""
    if status != 200:
        raise ValueError(f"the upload was refused with HTTP {status}{said}")
    raise ValueError(f'the upload was answered without a job id (not {{"job_id": N}}){said}')
