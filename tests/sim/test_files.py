"""The simulator's file path: core.download, GET /_download, config.save and system.debug.

Each test names the middleware file it follows (truenas/middleware, read at TS-24.10.2,
TS-25.04.2.6, TS-25.10.1 and TS-26.0.0-BETA.2).
"""
from __future__ import annotations

import io
import tarfile

import pytest
from gevent import socket

from fleetclt.client.http import http_request
from fleetclt.client.tls import TLSPolicy
from fleetclt.errors import JobFailed, RemoteCallError
from fleetclt.protocol.endpoint import Endpoint
from fleetclt.protocol.files import parse_download_answer
from fleetclt.sim import Faults, ManualClock
from fleetclt.sim.api_files import change_config, files_of
from fleetclt.sim.http_files import hold_downloads

VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.2")


def ticket(session, method="config.save", args=(), filename="out.bin", buffered=False):
    return parse_download_answer(session.call("core.download", method, list(args), filename, buffered))


def get(session, path):
    """(status, body, headers) of one GET on the session's host."""
    response = http_request(session.name, Endpoint.parse(session.uri).with_path(path), TLSPolicy(), read_timeout=10)
    return response.status, b"".join(response.chunks()), response.headers


def members_of(tar_bytes):
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        return tar.getnames()


def raw_get(host, path, source):
    """A GET sent from another loopback address than the session's (the token's origin)."""
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect((host.address, host.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head = b""
    while b"\r\n" not in head:
        head += sock.recv(1024)
    sock.close()
    return int(head.split()[1])


@pytest.mark.parametrize("version", VERSIONS)
def test_a_download_streams_the_job_output_once(make_host, session_for, version):
    """apps/file_app.py (main.py on 24.10) FileApplication.download: 200 with the token's filename,
    chunked; the job is unregistered when its download starts, so a second GET is refused: 401 from
    25.04 (the token was single use, plugins/auth.py get_token), 410 on 24.10 (the token lives on)."""
    host = make_host(version=version)
    session = session_for(host)
    answer = ticket(session, args=[{"secretseed": True}], filename="nas01.tar")
    assert answer.path.startswith(f"/_download/{answer.job_id}?auth_token=")
    status, body, headers = get(session, answer.path)
    assert status == 200 and headers["content-disposition"] == 'attachment; filename="nas01.tar"'
    assert headers["transfer-encoding"] == "chunked" and "content-length" not in headers
    assert members_of(body) == ["freenas-v1.db", "pwenc_secret"]
    assert session.wait_job(answer.job_id) is None
    again, empty, _ = get(session, answer.path)
    assert (again, empty) == ((401 if version != "24.10.2" else 410), b"")


def test_refusals_in_the_handler_order(make_host, session_for):
    """apps/file_app.py FileApplication.download: a path not ending in a digit 404; no token, an unknown
    token or one made for another job 401; an unknown job 404 (the token checked first)."""
    host = make_host(version="24.10.2")  # tokens are reusable there, so one serves every check
    session = session_for(host)
    answer = ticket(session)
    token = answer.path.split("?", 1)[1]
    assert get(session, "/_download/abc?" + token)[0] == 404
    assert get(session, f"/_download/{answer.job_id}")[0] == 401
    assert get(session, f"/_download/{answer.job_id}?auth_token=nope")[0] == 401
    assert get(session, f"/_download/{answer.job_id + 1}?{token}")[0] == 401
    assert get(session, answer.path)[0] == 200


def test_a_token_is_bound_to_the_callers_address_from_25_04(make_host, session_for):
    """service/core_service.py _download: generate_token(..., match_origin=True, single_use=True) from
    25.04; utils/origin.py ConnectionOrigin.match compares rem_addr. 24.10's get_token checks neither."""
    new, old = make_host("new", version="25.10.1"), make_host("old", version="24.10.2")
    for host, expected in ((new, 401), (old, 200)):
        answer = ticket(session_for(host))
        assert raw_get(host, answer.path, "127.0.0.2") == expected


def test_a_token_expires_after_300_seconds_unused(make_host, session_for):
    """plugins/auth.py Token.is_valid: last_used_at + ttl, with ttl 300 from core_service.py _download."""
    clock = ManualClock()
    host = make_host(clock=clock, version="25.10.1")
    session = session_for(host)
    answer = ticket(session)
    clock.advance(301)
    assert get(session, answer.path)[0] == 401


def test_an_unread_download_closes_its_pipe_after_60_seconds(make_host, session_for):
    """apps/file_app.py register_job: 60 s (3600 buffered) to start the download, then _cleanup_job
    closes the pipe: the job's next write fails (EPIPE), and the URL answers 410."""
    host = make_host(version="25.10.1", faults=Faults(job_duration=0.1))  # clock speed 100: 0.6 s real
    session = session_for(host)
    answer = ticket(session, "system.debug")
    with pytest.raises(JobFailed, match="Broken pipe"):
        session.wait_job(answer.job_id, timeout=30)
    assert get(session, answer.path)[0] == 410


def test_a_buffered_pipe_is_read_to_its_current_end(make_host, session_for):
    """pipe.py Pipe: a buffered pipe is a temporary file; a reader at its end sees EOF whether or not the
    job is done (core.download's docs: wait for the job before fetching a buffered download)."""
    host = make_host(version="25.10.1", faults=Faults(job_duration=0.5, debug_size=3 * 1024 * 1024))
    session = session_for(host)
    host.hold_jobs(True)
    early = ticket(session, "system.debug", buffered=True)
    assert get(session, early.path)[:2] == (200, b"")
    host.hold_jobs(False)
    session.wait_job(early.job_id, timeout=30)
    late = ticket(session, "system.debug", buffered=True)
    session.wait_job(late.job_id, timeout=30)
    assert len(get(session, late.path)[1]) == 3 * 1024 * 1024


@pytest.mark.parametrize("options, members", [
    ({"secretseed": True}, ["freenas-v1.db", "pwenc_secret"]),
    ({"root_authorized_keys": True}, ["freenas-v1.db", "truenas_admin_authorized_keys", "root_authorized_keys"]),
    ({"secretseed": True, "root_authorized_keys": True, "pool_keys": True},
     ["freenas-v1.db", "pwenc_secret", "truenas_admin_authorized_keys", "root_authorized_keys"]),
])
def test_config_save_writes_a_tar_of_the_chosen_files(make_host, session_for, options, members):
    """plugins/config.py save_tar_file: freenas-v1.db, pwenc_secret with secretseed, the authorized_keys
    files with root_authorized_keys; pool_keys is ignored."""
    session = session_for(make_host())
    body = get(session, ticket(session, args=[options]).path)[1]
    assert members_of(body) == members


def test_config_save_without_options_is_the_bare_database(make_host, session_for):
    """plugins/config.py save: `save_db_only` unless an option is set (pool_keys alone does not count)."""
    session = session_for(make_host())
    body = get(session, ticket(session, args=[{"pool_keys": True}]).path)[1]
    assert body.startswith(b"SQLite format 3\x00") and not tarfile.is_tarfile(io.BytesIO(body))


def test_an_unchanged_configuration_saves_the_same_bytes(make_host, session_for):
    """plugins/config.py save_tar_file adds the files as they are on disk: the same files give the
    same tar. The simulator fixes member times so that holds here too."""
    host = make_host()
    session = session_for(host)
    first, second = (get(session, ticket(session, args=[{"secretseed": True}]).path)[1] for _ in range(2))
    change_config(host)
    third = get(session, ticket(session, args=[{"secretseed": True}]).path)[1]
    assert first == second != third


def test_config_save_called_directly_has_no_pipe(make_host, session_for):
    """job.py Job.__init__ check_pipe: a job declared with pipes=["output"] needs the caller to open it
    ("Pipe 'output' is not open"); only core.download does. Here the job fails with that text."""
    session = session_for(make_host())
    with pytest.raises(JobFailed, match="Pipe 'output' is not open"):
        session.call("config.save", {}, job=True)


def test_system_debug_has_the_configured_size_and_one_at_a_time(make_host, session_for):
    """plugins/system/debug.py debug: @job(lock='system.debug', lock_queue_size=0): a second one while
    one runs is refused with EBUSY."""
    host = make_host(faults=Faults(job_duration=0.5, debug_size=5 * 1024 * 1024 + 7))
    session = session_for(host)
    host.hold_jobs(True)
    running = ticket(session, "system.debug")
    with pytest.raises(RemoteCallError, match="already being performed"):
        ticket(session, "system.debug")
    host.hold_jobs(False)
    assert len(get(session, running.path)[1]) == 5 * 1024 * 1024 + 7
    assert files_of(host).downloads == 1


def test_a_client_gone_mid_download_fails_the_job_with_a_broken_pipe(make_host, session_for):
    """apps/file_app.py download: the copy stops when the response write fails, and pipes are closed;
    pipe.py: the job's next write to a closed os.pipe fails (EPIPE)."""
    host = make_host(faults=Faults(job_duration=0.1, debug_size=8 * 1024 * 1024))
    session = session_for(host)
    hold_downloads(host, 1024 * 1024)
    answer = ticket(session, "system.debug")
    response = http_request(session.name, Endpoint.parse(session.uri).with_path(answer.path), TLSPolicy())
    assert files_of(host).held.wait(10)
    response.close()
    hold_downloads(host, None)
    with pytest.raises(JobFailed, match="Broken pipe"):
        session.wait_job(answer.job_id, timeout=30)


def test_core_download_of_a_missing_method_is_enomethod(make_host, session_for):
    """service/core_service.py _download: get_method fails before any job or token exists."""
    session = session_for(make_host())
    with pytest.raises(RemoteCallError, match="not found"):
        ticket(session, "config.nosuch")
