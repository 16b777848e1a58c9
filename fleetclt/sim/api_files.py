"""core.download and the jobs that write a file: config.save and system.debug.

service/core_service.py `download` (24.10 to 26.0): run the method as a job
with an output pipe, make a token (`auth.generate_token(300, {filename, job})`;
from 25.04 single use and bound to the caller's address), register the job
with the file application (fileapp.register_job: the pipe is closed if no
download starts within 60 s, 3600 s when buffered), and answer
`[job_id, "/_download/<job_id>?auth_token=<token>"]`. The HTTP side is
http_files.py. All of this lives in middlewared's memory: a restart forgets
it (`files_of` starts afresh when the host's job engine was replaced).

pipe.py: an unbuffered output pipe is an os.pipe, so the job blocks until the
download reads, and closing the read end makes its next write fail with
EPIPE; a buffered one is a temporary file that a reader finds at its current
end, finished or not. plugins/config.py `save`: the bare database unless an
option asks for more, then a tar of freenas-v1.db, pwenc_secret (secretseed)
and the authorized_keys files (root_authorized_keys). plugins/system/debug.py
`debug`: lock "system.debug" with a queue of 0.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import secrets
import tarfile
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gevent.event import Event
from gevent.queue import Empty, Queue

from .api_domain import work
from .failures import ENOMETHOD, CallError, ValidationErrors
from .jobs import Job, JobEngine
from .registry import Param, api, lookup

if TYPE_CHECKING:
    from .connection import Connection
    from .host import SimHost

TOKEN_TTL = 300.0                                  # core_service.py: auth.generate_token(300, ...)
UNREAD_LIMIT, BUFFERED_LIMIT = 60.0, 3600.0        # fileapp.register_job: a download must start by then
PIECE = 1024 * 1024                                # file_app.py reads the pipe 1 MiB at a time
PIPE_CAPACITY = 64 * 1024                          # what an os.pipe takes before its writer waits (Linux)
OUTPUT = {"pipes": ("output",)}                    # @job(pipes=["output"])
CONFIG_OPTIONS = ("secretseed", "pool_keys", "root_authorized_keys")
_EOF = b""


class Pipe:
    """A job's pipe: job.pipes.output (the job writes, the download reads) or an input pipe
    (the upload writes, the job reads); `close` closes the read end."""

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered
        self._pieces: Queue[bytes] = Queue() if buffered else Queue(maxsize=1)
        self.closed = False
        self._ended = False  # the write end is closed: what is in the pipe is all there will be

    def write(self, data: bytes) -> None:
        """Unbuffered, wait while the pipe holds what the reader has not taken; EPIPE once it is closed."""
        step = max(1, len(data)) if self.buffered else PIPE_CAPACITY
        for start in range(0, len(data), step):
            if self.closed:
                raise BrokenPipeError(errno.EPIPE, "Broken pipe")
            self._pieces.put(data[start:start + step])
        if self.closed:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    def finish(self) -> None:
        """The writer closed its end, without waiting for the reader: what it wrote stays readable,
        then the reader sees the end of the file."""
        self._ended = True
        if not self.closed and not self._pieces.full():
            self._pieces.put_nowait(_EOF)  # wakes a reader waiting on an empty pipe

    def read(self) -> bytes:
        """The next piece; b"" at the end (for a buffered pipe: at its current end, whatever the job does)."""
        if self._ended and self._pieces.empty():
            return _EOF
        try:
            piece: bytes = self._pieces.get() if not self.buffered else self._pieces.get_nowait()
        except Empty:
            return _EOF
        return piece

    def close(self) -> None:
        """The read end closes: unbuffered, a writer waiting is released and its next write fails;
        a buffered (file) writer goes on writing into the file nobody reads."""
        self.closed = not self.buffered
        while not self._pieces.empty():
            self._pieces.get_nowait()


@dataclass
class Token:
    """auth.py Token: valid while used within `ttl`; `origin` the address it is bound to, if any."""

    job_id: int
    filename: str
    last_used: float
    origin: str | None
    single_use: bool


@dataclass
class HostFiles:
    """The file application and tokens of one middleware process, and the test switches."""

    engine: JobEngine | None = None
    tokens: dict[str, Token] = field(default_factory=dict)
    pipes: dict[int, Pipe] = field(default_factory=dict)  # fileapp.jobs: registered, not downloaded yet
    config_generation: int = 0   # bump (change_config) to make config.save's output differ
    downloads: int = 0           # downloads that started streaming
    uploads: int = 0             # uploads whose file part reached a job (http_upload.py)
    images_installed: int = 0    # update images update.file accepted (api_upload.py)
    restored_db: bytes | None = None  # the database config.upload put in place, which config.save then sends
    hold_after: int | None = None  # hold_downloads: pause every download after this many bytes
    held: Event = field(default_factory=Event)      # set once a download is paused
    released: Event = field(default_factory=Event)
    upload_hold_after: int | None = None  # hold_uploads: pause every upload's file after this many bytes
    upload_held: Event = field(default_factory=Event)
    upload_released: Event = field(default_factory=Event)


_FILES: weakref.WeakKeyDictionary[SimHost, HostFiles] = weakref.WeakKeyDictionary()


def files_of(host: SimHost) -> HostFiles:
    """The host's file state; tokens and registered jobs are forgotten when its middleware restarted."""
    files = _FILES.get(host)
    if files is None:
        files = _FILES[host] = HostFiles(released=_set(Event()), upload_released=_set(Event()))
    if files.engine is not host.engine:
        files.engine, files.tokens, files.pipes = host.engine, {}, {}
    return files


def _set(event: Event) -> Event:
    event.set()
    return event


def change_config(host: SimHost) -> None:
    """The host's configuration changed: its next config.save differs from the last."""
    files = files_of(host)
    files.config_generation += 1
    files.restored_db = None


def take_token(host: SimHost, value: str, address: str) -> Token | None:
    """auth.get_token as the download handler calls it; None means 401.

    24.10 only looks the token up. From 25.04 it must also be within its ttl and
    used from the address it is bound to, and a single-use token is destroyed here.
    """
    files = files_of(host)
    token = files.tokens.get(value)
    if token is None or host.config.version_info < (25, 4):
        return token
    if host.clock.now() >= token.last_used + TOKEN_TTL:
        files.tokens.pop(value, None)
        return None
    if token.origin is not None and token.origin != address:
        return None
    if token.single_use:
        files.tokens.pop(value, None)
    return token


def _register(host: SimHost, job: Job, pipe: Pipe, buffered: bool) -> None:
    """fileapp.register_job: unless a download starts in time, the pipe is closed (the job fails on EPIPE)."""
    files = files_of(host)
    files.pipes[job.id] = pipe

    def clean_up() -> None:
        if files.pipes.get(job.id) is pipe:
            del files.pipes[job.id]
            pipe.close()
    host.spawn_later(BUFFERED_LIMIT if buffered else UNREAD_LIMIT, clean_up)


def _feeding(func: Callable[..., Any], pipe: Pipe) -> Callable[..., Any]:
    """The job body with its output pipe; job.py closes the write end however the job ends."""
    def run(conn: Connection, job: Job, *args: Any) -> Any:
        try:
            return func(conn, job, *args, output=pipe)
        finally:
            pipe.finish()
    return run


@api("core.download", Param("method", (str,)), Param("args", (list,)), Param("filename", (str,)),
     Param("buffered", (bool,), False))
def download(conn: Connection, method: str, args: list[Any], filename: str, buffered: bool) -> list[Any]:
    host = conn.host
    target = lookup(method, host.config.version_info)
    if target is None:
        raise CallError(f"Method {method!r} not found", ENOMETHOD)
    bound = target.bind(args)
    if not target.job:  # call_with_audit returned a plain result, and `job.id` fails on it
        result = target.func(conn, *bound)
        raise AttributeError(f"'{type(result).__name__}' object has no attribute 'id'")
    pipe = Pipe(buffered)
    job = conn.submit_job(replace(target, func=_feeding(target.func, pipe)), bound)
    newer = host.config.version_info >= (25, 4)
    value = secrets.token_urlsafe(48)
    files_of(host).tokens[value] = Token(job.id, filename, host.clock.now(),
                                         conn.ip if newer and not conn.unix else None, newer)
    _register(host, job, pipe, buffered)
    return [job.id, f"/_download/{job.id}?auth_token={value}"]


def _opened(output: Pipe | None) -> Pipe:
    """job.py check_pipe: a job that needs an output pipe, called without one (not via core.download)."""
    if output is None:
        raise ValueError("Pipe 'output' is not open")
    return output


def _write(pipe: Pipe, pieces: Iterator[bytes]) -> None:
    for piece in pieces:
        pipe.write(piece)


def _in_pieces(data: bytes) -> Iterator[bytes]:
    for start in range(0, len(data), PIECE):
        yield data[start:start + PIECE]


# -- config.save --------------------------------------------------------------------
def config_database(host: SimHost) -> bytes:
    """freenas-v1.db: an SQLite-looking file, the same while the configuration does not change
    (the one config.upload restored, until it changes)."""
    restored = files_of(host).restored_db
    if restored is not None:
        return restored
    body = json.dumps({"host": host.name, "version": host.config.version,
                       "generation": files_of(host).config_generation,
                       "users": sorted(u["username"] for u in host.data.users)}, sort_keys=True).encode()
    return b"SQLite format 3\x00" + body.ljust(4080, b"\x00")


def config_members(host: SimHost, options: dict[str, Any]) -> dict[str, bytes]:
    """The tar members config.save writes for these options, by name."""
    members = {"freenas-v1.db": config_database(host)}
    if options.get("secretseed"):
        members["pwenc_secret"] = hashlib.sha256(f"pwenc:{host.name}".encode()).digest()
    if options.get("root_authorized_keys"):
        key = hashlib.sha256(host.name.encode()).hexdigest()
        members["truenas_admin_authorized_keys"] = f"ssh-ed25519 AAAA{key} admin@fleet\n".encode()
        members["root_authorized_keys"] = f"ssh-ed25519 AAAA{key[::-1]} root@fleet\n".encode()
    return members


def config_tar(host: SimHost, options: dict[str, Any]) -> bytes:
    """The tar; member times are fixed, so an unchanged configuration gives the same bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data in config_members(host, options).items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000 + files_of(host).config_generation, 0o600
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@api("config.save", Param("options", (dict,), {}), job=True, extra=OUTPUT)
def config_save(conn: Connection, job: Job, options: dict[str, Any], output: Pipe | None = None) -> None:
    pipe = _opened(output)
    unknown = [(f"options.{key}", "Extra inputs are not permitted", errno.EINVAL)
               for key in options if key not in CONFIG_OPTIONS]
    if unknown:
        raise ValidationErrors(unknown)
    chosen = {key: bool(options.get(key, False)) for key in CONFIG_OPTIONS if key != "pool_keys"}
    work(conn, job, ("Saving configuration",))
    data = config_tar(conn.host, chosen) if any(chosen.values()) else config_database(conn.host)
    _write(pipe, _in_pieces(data))


# -- system.debug ----------------------------------------------------------------------
def debug_pieces(host: SimHost, size: int) -> Iterator[bytes]:
    """`size` bytes of a debug file, made piece by piece (never whole in memory)."""
    block = hashlib.sha256(host.name.encode()).digest() * (PIECE // 32)
    for start in range(0, size, PIECE):
        yield block[:min(PIECE, size - start)]


@api("system.debug", job=True, lock=lambda *_: "system.debug", lock_queue_size=0, extra=OUTPUT)
def system_debug(conn: Connection, job: Job, output: Pipe | None = None) -> None:
    pipe = _opened(output)
    work(conn, job, ("Generating debug file", "Collecting logs", "Compressing debug file"))
    _write(pipe, debug_pieces(conn.host, conn.host.faults.debug_size))
