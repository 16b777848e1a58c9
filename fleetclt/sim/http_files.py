"""GET /_download/<job_id>?auth_token=...: a job's output pipe streamed over HTTP.

apps/file_app.py `FileApplication.download` (main.py on 24.10; the same at
TS-24.10.2, TS-25.04.2.6, TS-25.10.1 and TS-26.0.0-BETA.2), in its order:
a path that does not end in a digit is 404; no token, a token that
auth.get_token refuses, or one made for another job is 401; a job the
middleware does not know is 404; a job no longer registered (downloaded
already, or not started within its limit) is 410. Every refusal has an empty
body. Then 200 with `Content-Disposition: attachment; filename="..."`, the
body chunked (no Content-Length) as the job writes its pipe; once the body
ends, or the client goes away, the pipe's read end is closed.

`hold_downloads` is the test switch: every download pauses after a number of
bytes until released, so a test can act (kill the client) mid-transfer.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .api_files import Pipe, files_of, take_token

if TYPE_CHECKING:
    from .host import SimHost

StartResponse = Callable[..., Any]
_REASONS = {401: "Unauthorized", 404: "Not Found", 410: "Gone"}


def hold_downloads(host: SimHost, after: int | None) -> None:
    """With a byte count, every download of `host` pauses after that many bytes; None releases them."""
    files = files_of(host)
    files.hold_after = after
    files.held.clear()
    (files.released.clear if after is not None else files.released.set)()


def serve_download(host: SimHost, environ: dict[str, Any],
                   start_response: StartResponse) -> Iterator[bytes] | list[bytes]:
    path = environ.get("PATH_INFO", "")
    last = path.rsplit("/", 1)[-1]
    if not last.isdigit():
        return _refuse(start_response, 404)
    job_id = int(last)
    values = parse_qs(environ.get("QUERY_STRING", "")).get("auth_token")
    token = take_token(host, values[0], environ.get("REMOTE_ADDR") or "") if values else None
    if token is None or token.job_id != job_id:
        return _refuse(start_response, 401)
    files = files_of(host)
    if job_id not in host.engine.jobs:
        return _refuse(start_response, 404)
    pipe = files.pipes.pop(job_id, None)  # _cleanup_cancel: the download has started
    if pipe is None:
        return _refuse(start_response, 410)
    start_response("200 OK", [("Content-Type", "application/octet-stream"),
                              ("Content-Disposition", f'attachment; filename="{token.filename}"')])
    files.downloads += 1
    return _stream(host, pipe)


def _stream(host: SimHost, pipe: Pipe) -> Iterator[bytes]:
    """The pipe's pieces as they come; the read end closes however the response ends."""
    files = files_of(host)
    sent = 0
    try:
        while True:
            piece = pipe.read()
            if not piece:
                return
            if files.hold_after is not None and sent + len(piece) > files.hold_after:
                cut = max(0, files.hold_after - sent)
                if cut:
                    yield piece[:cut]
                    sent += cut
                    piece = piece[cut:]
                files.held.set()
                files.released.wait()
            sent += len(piece)
            yield piece
    finally:
        pipe.close()


def _refuse(start_response: StartResponse, status: int) -> list[bytes]:
    """aiohttp's web.Response() with only a status: an empty body."""
    start_response(f"{status} {_REASONS[status]}", [("Content-Type", "application/octet-stream"),
                                                     ("Content-Length", "0")])
    return []
