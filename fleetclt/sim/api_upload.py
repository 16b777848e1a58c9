"""The jobs that read an uploaded file: config.upload (restore) and update.file (manual update).

Both are declared with an input pipe (`@job(pipes=["input"])`) that only a POST
to /_upload opens (http_upload.py); the handler feeds the file part into the
pipe while the job reads it.

plugins/config.py `upload` (24.10 to 26.0): from 25.04 only a full admin
(`_check_access`: "Configuration upload is limited to full administrators");
reads the pipe, failing past 10 MiB; a tar must hold `freenas-v1.db` (or a
`*.db`), anything else is taken as the database itself; the database must pass
`migrate` (here: it must be the SQLite file config.save writes); then the host
reboots 10 s later (`system.reboot`, delay 10). The restored database is what
config.save sends from then on.

plugins/update.py `file` (24.10, 25.04), plugins/update_/update.py (25.10) and
update_/__init__.py (26.0): lock "update"; "Writing uploaded file to disk" at
10 %, then update.install mounts the image (a file that is no image: "Invalid
update image file"), refuses the running version and a downgrade, verifies
every file of the manifest by its checksum ("Checksum mismatch for ..."), and
installs. The simulator's image is a manifest line then the payload (see
`write_update_image`): the payload's sha256 is what the manifest says. The host
then needs a reboot, as after any update (host.update_applied).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .api_domain import work
from .api_files import PIECE, Pipe, files_of
from .config import version_tuple
from .failures import CallError
from .jobs import Job
from .registry import Param, api

if TYPE_CHECKING:
    from .connection import Connection

INPUT = {"pipes": ("input",)}                      # @job(pipes=["input"])
CONFIG_MAX = 10485760                              # config.py upload: max_size
REBOOT_DELAY, REBOOT_DOWNTIME = 10.0, 20.0         # system.reboot {'delay': 10}; how long the box is away
IMAGE_MAGIC = b"TRUENAS-SIM-UPDATE\n"
IMAGE_MEMBER = "rootfs.squashfs"
SQLITE_MAGIC = b"SQLite format 3\x00"
INSTALL_STEPS = ("Running pre-checks", "Installing", "Updating boot loader", "Migrating configuration")


def with_inputs(func: Callable[..., Any], pipes: list[Pipe]) -> Callable[..., Any]:
    """The job body with its input pipes; the read ends close when the job ends, so a feeder
    still writing then gets EPIPE (copy_multipart_to_pipe stops quietly)."""
    def run(conn: Connection, job: Job, *args: Any) -> Any:
        try:
            return func(conn, job, *args, inputs=pipes)
        finally:
            for pipe in pipes:
                pipe.close()
    return run


def _pieces(pipe: Pipe) -> Iterator[bytes]:
    while piece := pipe.read():
        yield piece


# -- config.upload ---------------------------------------------------------------------
@api("config.upload", job=True, extra=INPUT)
def config_upload(conn: Connection, job: Job, inputs: list[Pipe] | None = None) -> None:
    host = conn.host
    newer = host.config.version_info >= (25, 4)
    if newer and not conn.full_admin():
        raise CallError("Configuration upload is limited to full administrators")
    if not inputs:  # job.pipes.input.r with no input pipe
        raise AttributeError("'NoneType' object has no attribute 'r'")
    if newer:
        job.set_progress(0, "Reading database file")
    received = bytearray()
    for piece in _pieces(inputs[0]):
        received += piece
        if len(received) > CONFIG_MAX:
            raise CallError(f"Uploaded config is greater than maximum allowed size ({CONFIG_MAX} Bytes)")
    database = _database_of(bytes(received))
    job.set_progress(15, "Replacing database file")
    job.set_progress(25, "Running database upload hooks")
    files_of(host).restored_db = database
    host.spawn_later(REBOOT_DELAY, host.restart, REBOOT_DOWNTIME)


def _database_of(data: bytes) -> bytes:
    """upload_impl: the database a tar holds (or the file itself), checked as `migrate` would."""
    database = data
    if _is_tar(data):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            member = next((m for m in tar.getmembers()
                           if m.isfile() and (m.name == "freenas-v1.db" or m.name.endswith(".db"))), None)
            extracted = tar.extractfile(member) if member is not None else None
            if extracted is None:
                raise CallError("Neither a valid tar or TrueNAS database file was provided.")
            database = extracted.read()
    if not database.startswith(SQLITE_MAGIC):
        raise CallError("Uploaded TrueNAS database file is not valid:\nError: file is not a database\n")
    return database


def _is_tar(data: bytes) -> bool:
    try:
        with tarfile.open(fileobj=io.BytesIO(data)):
            return True
    except tarfile.TarError:
        return False


# -- update.file ----------------------------------------------------------------------
def write_update_image(path: str | os.PathLike[str], version: str, size: int) -> str:
    """Write a simulated update image for `version` with `size` payload bytes; its payload's sha256.

    The payload is made piece by piece, twice (hash, then write): never whole in memory.
    """
    digest = hashlib.sha256()
    for piece in _payload(version, size):
        digest.update(piece)
    manifest = {"version": version, "size": size, "checksums": {IMAGE_MEMBER: digest.hexdigest()}}
    with open(path, "wb") as image:
        image.write(IMAGE_MAGIC + json.dumps(manifest).encode() + b"\n")
        for piece in _payload(version, size):
            image.write(piece)
    return digest.hexdigest()


def _payload(version: str, size: int) -> Iterator[bytes]:
    block = hashlib.sha256(version.encode()).digest() * (PIECE // 32)
    for start in range(0, size, PIECE):
        yield block[:min(PIECE, size - start)]


@api("update.file", Param("options", (dict,), {}), job=True, lock=lambda *_: "update", extra=INPUT)
def update_file(conn: Connection, job: Job, options: dict[str, Any], inputs: list[Pipe] | None = None) -> None:
    host = conn.host
    if options.get("resume"):
        raise CallError("There is no uploaded file to resume")
    destination = options.get("destination")
    if destination and not str(destination).startswith("/mnt/"):
        raise CallError(f"Destination: {destination!r} must reside within a pool")
    if not inputs:
        raise ValueError("Pipe 'input' is not open")  # job.check_pipe('input')
    job.set_progress(10, "Writing uploaded file to disk")
    manifest, digest = _read_image(inputs[0])
    job.set_progress(50, "Reading update file")
    if manifest is None:
        raise CallError("Invalid update image file. Please, re-download update. Error: mount: "
                        "/tmp/update: wrong fs type, bad option, bad superblock on /dev/loop0")
    new, old = str(manifest.get("version")), host.config.version
    if new == old:
        raise CallError(f"You already are using {new}")
    if version_tuple(new) < version_tuple(old):
        raise CallError(f"Unable to downgrade from {old} to {new}")
    job.set_progress(50, f"Verifying {IMAGE_MEMBER}")
    expected = (manifest.get("checksums") or {}).get(IMAGE_MEMBER)
    if digest != expected:
        raise CallError(f"Checksum mismatch for {IMAGE_MEMBER!r}: {digest} != {expected}")
    work(conn, job, INSTALL_STEPS)
    files_of(host).images_installed += 1
    host.update_applied()
    job.set_progress(95, "Cleaning up")
    job.set_progress(100, "Update completed")


def _read_image(pipe: Pipe) -> tuple[dict[str, Any] | None, str]:
    """The image's manifest (None if it is not one) and its payload's sha256, read to the end."""
    head = bytearray()
    digest = hashlib.sha256()
    pieces = _pieces(pipe)
    for piece in pieces:
        head += piece
        if b"\n" in head[len(IMAGE_MAGIC):] or len(head) > 65536:
            break
    manifest: dict[str, Any] | None = None
    if head.startswith(IMAGE_MAGIC) and b"\n" in head[len(IMAGE_MAGIC):]:
        line, _, rest = bytes(head[len(IMAGE_MAGIC):]).partition(b"\n")
        try:
            parsed = json.loads(line)
        except ValueError:
            parsed = None
        manifest = parsed if isinstance(parsed, dict) else None
        digest.update(rest)
    for piece in pieces:
        digest.update(piece)
    return manifest, digest.hexdigest()

