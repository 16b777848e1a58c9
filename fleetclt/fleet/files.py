"""Files from every host: a job's output streamed to disk, never looking complete before it is.

`download(fleet, method, *args, dest=...)` runs `core.download` on each host
and streams the file to `dest/<template>` (docs/protocol.md §16). A file is
written under a temporary name beside its final one (`.NAME.XXXX.part`, mode
0600), then checked: the body ended properly, matches its Content-Length if
it had one, and the job that wrote it ended SUCCESS. Only then is it fsynced
and renamed, and the directory fsynced: a killed process leaves a `.part`
file, never a partial file under the final name. Nothing holds a whole file
in memory. The HTTP request goes to the controller the session is connected
to (the token is bound to its address from 25.04), with the inventory's TLS
settings, the ones the session uses.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gevent

from ..client.http import http_request
from ..client.session import HostSession
from ..errors import ConfigError, ProtocolError, TransferError
from ..protocol.endpoint import Endpoint
from ..protocol.files import (
    DEFAULT_TEMPLATE,
    PART_SUFFIX,
    check_template,
    default_filename,
    parse_download_answer,
    render_path,
    safe_name,
    stamp,
)
from ..protocol.jobs import JobRef
from .results import FleetResult, ResultCallback

if TYPE_CHECKING:
    from .fleet import Fleet  # the functions are also Fleet's methods (fleet.py)

class PartFile:
    """A file being written under a temporary name beside `final`; `publish` renames it, `discard` removes it.

    Hashing, writing and fsyncing run in the gevent hub's thread pool (all three
    release the GIL): the hub meanwhile reads the other hosts' bodies, and the
    work spreads over two cores (docs/performance.md §7). One step at a time:
    each waits for the one before.
    """

    def __init__(self, final: Path) -> None:
        self.final = final
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=PART_SUFFIX)  # 0600
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb", buffering=0)  # pieces come big: no buffer, no copy into one
        self._hash = hashlib.sha256()
        self._step: Any = None  # the step running in the thread pool, if any
        self.size = 0

    def write(self, data: bytes | memoryview) -> None:
        """Hash and write a piece; the caller may reuse its memory once this returns."""
        self._off_hub(self._write, data)
        self.size += len(data)

    def _write(self, data: bytes | memoryview) -> None:
        self._hash.update(data)
        view = memoryview(data)
        while view:
            view = view[self._file.write(view):]

    def _off_hub(self, step: Callable[..., None], *args: Any) -> None:
        self._step = gevent.get_hub().threadpool.spawn(step, *args)
        self._step.get()
        self._step = None

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def seal(self, host: str) -> None:
        """Fsync; the size on disk must be what was received."""
        self._off_hub(os.fsync, self._file.fileno())
        on_disk = os.fstat(self._file.fileno()).st_size
        self._file.close()
        if on_disk != self.size:
            raise TransferError(f"{self.path.name} holds {on_disk} bytes on disk, not the {self.size} received", host)

    def publish(self, as_link_of: Path | None = None) -> None:
        """Put the sealed file under its final name (or, for an unchanged file, a hard link to its twin)."""
        if as_link_of is None:
            os.replace(self.path, self.final)
        else:
            link = self.path.with_name(self.path.name + ".link")
            os.link(as_link_of, link)
            os.replace(link, self.final)
            self.path.unlink()
        self._off_hub(fsync_directory, self.final.parent)

    def discard(self) -> None:
        """Remove the part; a step still running (its greenlet was killed) ends first, so that its
        write cannot land in whatever file reuses the descriptor."""
        if self._step is not None:
            self._step.wait()
        self._file.close()
        self.path.unlink(missing_ok=True)


def fsync_directory(path: Path) -> None:
    """A rename or link is durable once its directory is fsynced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fetch(session: HostSession, method: str, args: Sequence[Any], final: Callable[[int], Path], *,
          filename: str, buffered: bool = False, read_timeout: float = 60.0) -> tuple[PartFile, int]:
    """Run `method` through core.download and stream its file into a sealed PartFile (not yet published).

    `final(job_id)` names where the file is to go. Returns the PartFile and the job id
    once the body is complete and the job ended SUCCESS; on any failure the part is removed.
    """
    answer = session.call("core.download", method, list(args), filename, buffered)
    try:
        ticket = parse_download_answer(answer)
    except ValueError as exc:
        raise ProtocolError(str(exc), session.name) from None
    job = JobRef(session.boot_id, ticket.job_id)
    if buffered:  # a buffered body ends where the job has got to: wait for the job first (§15)
        session.wait_job(job)
    part = PartFile(final(ticket.job_id))
    try:
        endpoint = Endpoint.parse(session.uri).with_path(ticket.path)
        response = http_request(session.name, endpoint, session.tls, connect_timeout=session.timeouts.connect,
                                read_timeout=read_timeout)
        if response.status != 200:
            response.close()
            raise TransferError(f"the download of job {ticket.job_id} was refused with HTTP {response.status}"
                                f"{_status_hint(response.status)}", session.name, response.status)
        for piece in response.pieces():
            part.write(piece)
        if response.content_length is not None and response.content_length != part.size:
            raise TransferError(f"got {part.size} bytes of the {response.content_length} announced", session.name)
        if not buffered:  # the body ends when the job closes its pipe, failed or not: its result decides
            session.wait_job(job)
        part.seal(session.name)
    except BaseException:
        part.discard()
        raise
    return part, ticket.job_id


def _status_hint(status: int) -> str:
    return {401: " (the token was refused: used already, expired, or from another address)",
            410: " (not fetched in time, or fetched already)"}.get(status, "")


def download_one(session: HostSession, method: str, args: Sequence[Any], dest: Path, *,
                 template: str = DEFAULT_TEMPLATE, filename: str | None = None, buffered: bool = False,
                 read_timeout: float = 60.0) -> dict[str, Any]:
    """One host's file, published under `dest/<template>`; what a HostResult's `result` holds."""
    name = filename or default_filename(method, args)
    when = stamp(dt.datetime.now(dt.timezone.utc))

    def final(job_id: int) -> Path:
        fields = {"host": session.name, "filename": safe_name(name), "job_id": job_id, "method": method,
                  "time": when}
        return dest / render_path(template, fields)
    with local_errors(session.name):
        part, job_id = fetch(session, method, args, final, filename=name, buffered=buffered,
                             read_timeout=read_timeout)
        part.publish()
    return {"path": str(part.final), "size": part.size, "sha256": part.sha256, "job_id": job_id}


@contextlib.contextmanager
def local_errors(host: str) -> Iterator[None]:
    """A file that cannot be written here fails that host with the reason, not as a bug."""
    try:
        yield
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        raise TransferError(f"cannot write{where}: {exc.strerror or exc}", host) from None


def download(fleet: Fleet, method: str, *args: Any, dest: str | os.PathLike[str],
             hosts: str | Iterable[str] = "all", template: str = DEFAULT_TEMPLATE, filename: str | None = None,
             buffered: bool = False, deadline: float | None = None,
             on_result: ResultCallback | None = None) -> FleetResult:
    """`method`'s file from every selected host to `dest/<template>` (default `{host}/{filename}`).

    Each ok host's result is `{"path", "size", "sha256", "job_id"}`. Template fields:
    {host}, {filename}, {job_id}, {method}, {time}. `filename` is what core.download is
    asked to name the file (default by method: debug.tgz, config.tar, ...).
    """
    try:
        check_template(template)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    root = Path(dest)

    def action(session: HostSession) -> dict[str, Any]:
        return download_one(session, method, args, root, template=template,
                            filename=filename, buffered=buffered)
    result: FleetResult = fleet.run(action, hosts=hosts, deadline=deadline, on_result=on_result)
    return result
