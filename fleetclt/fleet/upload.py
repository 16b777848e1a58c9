"""Files to every host: a POST to /_upload that feeds a job (config.upload, update.file, ...).

`upload(fleet, method, *params, files=...)` sends the files to each selected
host as the multipart body /_upload reads (docs/protocol.md §16) and follows
the job it starts to its end. Per host:

1. `auth.generate_token` on the host's session, asked as the session asks for
   its own (client/tokens.py): no attributes (core.download's carry some, and
   /_upload refuses those), bound to our address, single use from 25.04 (24.10
   has no such option; its token lives its TTL). The token goes in
   `Authorization: Token`, never on a command line, in a log or in an error;
   the `--debug` frame log masks the reply (redact.py). It is never a
   password: no Basic auth, TLS or not.
2. POST /_upload to the controller the session is connected to, with the
   inventory's TLS settings. Each file is read once per host, from the page
   cache to the socket with sendfile on a plain connection, in buffered reads on
   TLS; nothing holds a whole file. A shared Bandwidth may cap the total rate.
3. The answer `{"job_id": N}` names the job, of the boot the token was made
   in; the job is followed like any other (progress, result).

The file is only fed to the job once the job started, so a cut upload leaves
a job that fails on its truncated input: an upload is never repeated here.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..client.bandwidth import Bandwidth
from ..client.http import BodyPiece, FileSlice, http_request
from ..client.job_watch import ProgressCallback
from ..client.session import HostSession
from ..client.tokens import GENERATE_TOKEN, token_of, token_request
from ..errors import ConfigError, TransferError
from ..protocol.endpoint import Endpoint
from ..protocol.jobs import JobRef
from ..protocol.multipart import FileContent, MultipartUpload, UploadFile, parse_upload_answer
from .results import FleetResult, ResultCallback

if TYPE_CHECKING:
    from .fleet import Fleet  # the functions are also Fleet's methods (fleet.py)

UPLOAD_PATH = "/_upload"
TOKEN_TTL = 300            # seconds; /_upload checks the token when the request starts
SINGLE_USE_FROM = (25, 4)  # auth.generate_token's `single_use` argument
SentCallback = Callable[[str, int], None]  # (host, bytes just sent)


@dataclass(frozen=True)
class UploadSource:
    """A local file to upload: its path and its size when the run began."""

    path: Path
    size: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> UploadSource:
        """The file at `path`; ConfigError (before any host is asked) if it cannot be read."""
        try:
            with open(path, "rb") as file:
                size = os.fstat(file.fileno()).st_size
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
        return cls(Path(path), size)


def sources(files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[UploadSource]:
    """One file or several, checked now."""
    paths = [files] if isinstance(files, (str, os.PathLike)) else list(files)
    if not paths:
        raise ConfigError("an upload needs a file")
    return [UploadSource.of(path) for path in paths]


def bandwidth_of(rate: float | None) -> Bandwidth | None:
    """The shared cap for `rate` bytes per second (None: no cap)."""
    if rate is None:
        return None
    if not rate > 0:
        raise ConfigError(f"the upload rate must be above 0 bytes per second, not {rate}")
    return Bandwidth(rate)


def upload_token(session: HostSession) -> str:
    """A token for one upload (see the module docstring); held in no log, error or result."""
    params = token_request(TOKEN_TTL, single_use=True, has_single_use=session.host_version() >= SINGLE_USE_FROM)
    return token_of(session.call(GENERATE_TOKEN, *params), session.name).reveal()


def start_upload(session: HostSession, files: Sequence[UploadSource], method: str,
                 params: Sequence[Any], *, bandwidth: Bandwidth | None = None,
                 on_sent: Callable[[int], None] | None = None) -> JobRef:
    """Send `files` into `method(*params)` on the host; the JobRef of the job the upload started."""
    token = upload_token(session)
    return send_upload(session, token, session.boot_id, files, method, params, bandwidth=bandwidth,
                       on_sent=on_sent)


def send_upload(session: HostSession, token: str, boot_id: str | None,
                files: Sequence[UploadSource], method: str, params: Sequence[Any], *,
                bandwidth: Bandwidth | None = None, on_sent: Callable[[int], None] | None = None,
                read_timeout: float = 60.0) -> JobRef:
    """The POST itself, with a token made under `boot_id` (the job it starts is of that boot).

    A rollout asks for the token first, journals, then sends: nothing asks the host
    anything between its journal entry and the upload.
    """
    body = MultipartUpload(method, params, [UploadFile(f.path.name, f.size) for f in files])
    endpoint = Endpoint.parse(session.uri).with_path(UPLOAD_PATH)
    headers = [("Authorization", f"Token {token}"), ("Content-Type", body.content_type)]
    with _opened(session.name, files) as descriptors:
        response = http_request(session.name, endpoint, session.tls, method="POST", headers=headers,
                                body=_with_files(body.pieces(), descriptors), content_length=body.length,
                                connect_timeout=session.timeouts.connect, read_timeout=read_timeout,
                                bandwidth=bandwidth, on_sent=on_sent)
        answer = b"".join(response.chunks())
    try:
        job_id = parse_upload_answer(response.status, answer)
    except ValueError as exc:
        raise TransferError(f"{exc}{_status_hint(response.status)}", session.name, response.status) from None
    return JobRef(boot_id, job_id, method, tuple(params), submitted=True)


def _status_hint(status: int) -> str:
    return {401: " (no credentials reached the server)",
            403: " (the token was refused, or the user may not call this method)",
            405: " (the server did not read the body as an upload)",
            422: " (no such method on this host)",
            502: " (the middleware is not running: rebooting?)"}.get(status, "")


@contextlib.contextmanager
def _opened(host: str, files: Sequence[UploadSource]) -> Iterator[list[int]]:
    """The files opened for this host's upload (each read once, from the start)."""
    descriptors: list[int] = []
    try:
        for source in files:
            try:
                descriptors.append(os.open(source.path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as exc:
                raise TransferError(f"cannot read {source.path}: {exc.strerror or exc}", host) from None
            size = os.fstat(descriptors[-1]).st_size
            if size != source.size:
                raise TransferError(f"{source.path} changed size ({source.size} -> {size} bytes) during the run",
                                    host)
        yield descriptors
    finally:
        for fd in descriptors:
            os.close(fd)


def _with_files(pieces: Iterable[bytes | FileContent], descriptors: list[int]) -> Iterator[BodyPiece]:
    """The multipart framing with each file's content as a slice of its open file."""
    for piece in pieces:
        yield FileSlice(descriptors[piece.index], 0, piece.size) if isinstance(piece, FileContent) else piece


def upload_one(session: HostSession, files: Sequence[UploadSource], method: str,
               params: Sequence[Any], *, bandwidth: Bandwidth | None = None,
               on_sent: Callable[[int], None] | None = None,
               on_progress: ProgressCallback | None = None) -> dict[str, Any]:
    """One host: upload, then wait for the job; what a HostResult's `result` holds."""
    job = start_upload(session, files, method, params, bandwidth=bandwidth, on_sent=on_sent)
    result = session.wait_job(job, on_progress=on_progress)
    return {"job_id": job.id, "bytes": sum(f.size for f in files), "result": result}


def upload(fleet: Fleet, method: str, *params: Any,
           files: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
           hosts: str | Iterable[str] = "all", rate: float | None = None, deadline: float | None = None,
           on_result: ResultCallback | None = None, on_sent: SentCallback | None = None) -> FleetResult:
    """Upload `files` into `method(*params)` on every selected host and wait for each job.

    `rate` caps the bytes per second of all uploads together; `fleet.forks`
    bounds how many run at once. Each ok host's result is
    `{"job_id", "bytes", "result"}` (the job's result). `on_sent(host, n)`
    hears of every n bytes sent. config.upload reboots the host.
    """
    chosen = sources(files)
    bandwidth = bandwidth_of(rate)

    def action(session: HostSession) -> dict[str, Any]:
        sent = (lambda count: on_sent(session.name, count)) if on_sent is not None else None
        return upload_one(session, chosen, method, params, bandwidth=bandwidth,
                          on_sent=sent)
    result: FleetResult = fleet.run(action, hosts=hosts, deadline=deadline, on_result=on_result)
    return result
