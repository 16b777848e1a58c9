"""The simulator's upload path: POST /_upload, config.upload and update.file.

Each test names the middleware file it follows (truenas/middleware, read at TS-24.10.2,
TS-25.04.2.6, TS-25.10.1 and TS-26.0.0-BETA.2).
"""
from __future__ import annotations

import base64
import json

import pytest

from fleetclt.client.http import http_request
from fleetclt.client.tls import TLSPolicy
from fleetclt.errors import JobFailed
from fleetclt.protocol.endpoint import Endpoint
from fleetclt.protocol.multipart import FileContent, MultipartUpload, UploadFile
from fleetclt.sim import Faults
from fleetclt.sim.api_files import config_tar, files_of
from fleetclt.sim.api_upload import write_update_image
from tests.helpers import wait_until

VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")


def token_of(session):
    """A token for /_upload as fleetclt makes one (fleet/upload.py): no attributes, single use from 25.04."""
    if session.host_version() >= (25, 4):
        return session.call("auth.generate_token", 300, {}, True, True)
    return session.call("auth.generate_token", 300, {}, True)


def post(session, raw: bytes, content_type: str, authorization: str | None = None, path="/_upload"):
    """(status, body) of one POST of `raw` to the session's host."""
    headers = [("Content-Type", content_type)]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    response = http_request(session.name, Endpoint.parse(session.uri).with_path(path), TLSPolicy(),
                            method="POST", headers=headers, body=[raw], content_length=len(raw), read_timeout=10)
    return response.status, b"".join(response.chunks())


def body_of(method, params, contents, names=None):
    body = MultipartUpload(method, params, [UploadFile(n, len(c)) for n, c in zip(names or ["f"] * len(contents),
                                                                                   contents, strict=True)])
    raw = b"".join(contents[p.index] if isinstance(p, FileContent) else p for p in body.pieces())
    return raw, body.content_type


def form(boundary, *parts):
    """A hand-made multipart body: (name, bytes) parts."""
    raw = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data + b"\r\n"
                   for name, data in parts)
    return raw + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def upload(session, method, params, contents, **kwargs):
    raw, content_type = body_of(method, params, contents, **kwargs)
    return post(session, raw, content_type, f"Token {token_of(session)}")


def test_refusals_in_the_handler_order(make_host, session_for):
    """apps/file_app.py FileApplication.upload (main.py on 24.10) with restful.py parse_credentials and
    authenticate: 500 for a body that is not multipart (aiohttp's reader raises), 405 without a part or
    with another first part, 400 for data that is not JSON, 422 without "method" (credentials only
    then), 401 without credentials, 403 "Invalid token", 405 without a file part, 422 for an unknown
    method (CallError ENOMETHOD)."""
    host = make_host(version="25.10.1")
    session = session_for(host)
    token = lambda: f"Token {token_of(session)}"  # noqa: E731  (single use: a fresh one per request)
    assert post(session, b"{}", "application/json", token())[0] == 500
    assert post(session, *form("b")) == (405, b"No part found on payload")
    assert post(session, *form("b", ("file", b"x")), token()) == (405, b'"data" part must be the first on payload')
    assert post(session, *form("b", ("data", b"{nope")), token())[0] == 400
    assert post(session, *form("b", ("data", b'{"params": []}')))[0] == 422
    data = ("data", b'{"method": "config.upload"}')
    assert post(session, *form("b", data, ("file", b"x"))) == (401, b"401: Unauthorized")
    assert post(session, *form("b", data, ("file", b"x")), "Token nope") == (403, b"Invalid token")
    assert post(session, *form("b", data), token()) == (405, b'"file" not found as second part on payload')
    status, text = post(session, *form("b", ("data", b'{"method": "nope.never"}'), ("file", b"x")), token())
    assert (status, text) == (422, b"[ENOMETHOD] Method 'never' not found in 'nope'")
    assert files_of(host).uploads == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_a_token_is_single_use_from_25_04_and_one_of_core_download_is_refused(make_host, session_for, version):
    """plugins/auth.py get_token_for_action: a token with attributes is refused (core.download's carry
    the job and filename); from 25.04 a single-use token is destroyed by its use. 24.10's lives its TTL."""
    host = make_host(version=version)
    session = session_for(host)
    raw, content_type = body_of("config.upload", [], [config_tar(host, {"root_authorized_keys": True})])
    token = f"Token {token_of(session)}"
    status, answer = post(session, raw, content_type, token)
    assert status == 200 and json.loads(answer) == {"job_id": json.loads(answer)["job_id"]}
    assert post(session, raw, content_type, token)[0] == (403 if version != "24.10.2" else 200)
    download_token = session.call("core.download", "config.save", [{}], "x.db", False)[1].split("=", 1)[1]
    assert post(session, raw, content_type, f"Token {download_token}") == (403, b"Invalid token")


def test_bearer_api_keys_and_basic_passwords(make_host, session_for):
    """restful.py parse_credentials / authenticate: `Bearer KEY` (401 "Invalid API key"), `Basic`
    (401 "Bad username or password"), any other scheme is no credentials (401)."""
    host = make_host(version="25.04.2", api_keys={"1-secretkey": "admin"})
    session = session_for(host)
    raw, content_type = body_of("update.file", [{}], [b"not an image"])
    assert post(session, raw, content_type, "Bearer 1-secretkey")[0] == 200
    assert post(session, raw, content_type, "Bearer 1-wrong") == (401, b"Invalid API key")
    basic = base64.b64encode(b"admin:wrong").decode()
    assert post(session, raw, content_type, f"Basic {basic}") == (401, b"Bad username or password")
    assert post(session, raw, content_type, "Digest x")[0] == 401


@pytest.mark.parametrize("version", VERSIONS)
def test_several_files_from_25_10_only(make_host, session_for, version):
    """apps/file_app.py: MAX_UPLOADED_FILES = 5 input pipes from 25.10 (a sixth part: 405 "Too many
    uploaded files"); 24.10 and 25.04 read one file part and ignore the rest."""
    host = make_host(version=version)
    session = session_for(host)
    six = form("b", ("data", b'{"method": "update.file", "params": [{}]}'), *[("file", b"x")] * 6)
    status, text = post(session, *six, f"Token {token_of(session)}")
    assert (status, text) == ((405, b"Too many uploaded files") if version >= "25.10" else (200, text))
    assert upload(session, "update.file", [{}], [b"x"] * 5)[0] == 200


def test_config_upload_restores_a_saved_tar_and_reboots(make_host, session_for):
    """plugins/config.py upload: the tar config.save wrote is accepted (freenas-v1.db inside), hooks run,
    then system.reboot with a delay of 10 s; the restored database is what the host then has."""
    host = make_host(version="26.0.0-BETA.2", faults=Faults(job_duration=0.1))
    session = session_for(host)
    saved = config_tar(host, {"root_authorized_keys": True, "secretseed": True})
    files_of(host).config_generation += 1    # the configuration changed since the backup
    boot = host.boot_id
    status, answer = upload(session, "config.upload", [], [saved])
    assert status == 200
    assert session.wait_job(json.loads(answer)["job_id"]) is None
    wait_until(lambda: host.boot_id != boot and host.middleware_up.is_set(), timeout=20)
    assert files_of(host).restored_db is not None and saved.count(files_of(host).restored_db) == 1


@pytest.mark.parametrize(("content", "message"), [
    (b"garbage" * 100, "Uploaded TrueNAS database file is not valid"),
    (b"SQLite format 3\x00" + b"x" * (10485760 + 1), "greater than maximum allowed size (10485760 Bytes)"),
])
def test_config_upload_rejects_what_is_no_configuration(make_host, session_for, content, message):
    """plugins/config.py upload / upload_impl: over 10 MiB fails while reading; a file that is neither a
    tar nor a database that `migrate` takes fails; nothing is restored and the host does not reboot."""
    host = make_host(version="25.04.2")
    session = session_for(host)
    boot = host.boot_id
    status, answer = upload(session, "config.upload", [], [content])
    assert status == 200
    with pytest.raises(JobFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        session.wait_job(json.loads(answer)["job_id"])
    assert files_of(host).restored_db is None and host.boot_id == boot


def test_config_upload_is_for_full_admins_from_25_04(make_host, session_for):
    """plugins/config.py _check_access (25.04 and later): a user session without FULL_ADMIN is refused;
    restful authorize() refuses such a caller before the job even starts here (403)."""
    host = make_host(version="25.10.1", users={"admin": "fleetclt-sim", "ops": "pw"})
    host.data.users[-1]["roles"] = []
    session = session_for(host, username="ops", password="pw")
    assert upload(session, "config.upload", [], [b"x"]) == (403, b"403: Forbidden")


@pytest.mark.parametrize("version", VERSIONS)
def test_update_file_installs_an_image_checked_by_sha256(make_host, session_for, tmp_path, version):
    """plugins/update.py file / file_impl (update_/update.py from 25.10): "Writing uploaded file to
    disk" at 10 %, then update.install: the manifest's checksum of each file is verified, then the
    install; the host then needs a reboot (a second update is refused from 25.10: EREBOOTREQUIRED)."""
    host = make_host(version=version, faults=Faults(job_duration=0.1))
    session = session_for(host)
    image = tmp_path / "update.img"
    write_update_image(image, "26.0.1", 3 * 1024 * 1024 + 5)
    progress = []
    status, answer = upload(session, "update.file", [{}], [image.read_bytes()])
    assert status == 200
    assert session.wait_job(json.loads(answer)["job_id"], on_progress=lambda job: progress.append(
        job["progress"]["percent"])) is None
    assert files_of(host).images_installed == 1 and files_of(host).uploads == 1
    assert progress == sorted(progress) and progress[-1] == 100


@pytest.mark.parametrize(("tamper", "message"), [
    (lambda data: data[:-1] + bytes([data[-1] ^ 1]), "Checksum mismatch for 'rootfs.squashfs'"),
    (lambda data: data[:100000], "Checksum mismatch"),
    (lambda data: b"MZ" + data[2:], "Invalid update image file"),
])
def test_update_file_refuses_a_damaged_image(make_host, session_for, tmp_path, tamper, message):
    """update_/install.py install_scale: sha256 per file of the manifest ("Checksum mismatch for ...");
    utils_linux.py mount_update: a file that is no squashfs ("Invalid update image file")."""
    host = make_host(version="25.10.1", faults=Faults(job_duration=0.1))
    session = session_for(host)
    image = tmp_path / "update.img"
    write_update_image(image, "26.0.1", 1024 * 1024)
    status, answer = upload(session, "update.file", [{}], [tamper(image.read_bytes())])
    with pytest.raises(JobFailed, match=message):
        session.wait_job(json.loads(answer)["job_id"])
    assert files_of(host).images_installed == 0


def test_update_file_refuses_the_running_version_and_a_downgrade(make_host, session_for, tmp_path):
    """update_/install_linux.py install: "You already are using X", "Unable to downgrade from A to B"."""
    host = make_host(version="25.10.1", faults=Faults(job_duration=0.1))
    session = session_for(host)
    for version, message in (("25.10.1", "You already are using 25.10.1"),
                             ("25.04.2", "Unable to downgrade from 25.10.1 to 25.04.2")):
        image = tmp_path / f"{version}.img"
        write_update_image(image, version, 1000)
        status, answer = upload(session, "update.file", [{}], [image.read_bytes()])
        with pytest.raises(JobFailed, match=message):
            session.wait_job(json.loads(answer)["job_id"])


def test_update_file_called_on_the_websocket_has_no_input_pipe(make_host, session_for):
    """job.py check_pipe: a job declared with an input pipe, called without /_upload."""
    session = session_for(make_host(version="25.10.1"))
    with pytest.raises(JobFailed, match="Pipe 'input' is not open"):
        session.call("update.file", {}, job=True)
