"""HostSession against real simulated hosts: login outcomes, errors, ordering, the call window."""
from __future__ import annotations

import logging
import socket

import gevent
import pytest

from fleetclt.client.session import Credentials, HostSession, Timeouts
from fleetclt.errors import (
    AuthError,
    CallTimeout,
    ConnectionLost,
    InsecureCredentialError,
    NotAJobError,
    RemoteCallError,
    RequestTooLarge,
    ThrottledError,
    ValidationError,
)
from fleetclt.secret import Secret
from fleetclt.sim import ManualClock
from tests.helpers import wait_until
from tests.wsclient import WsClient

KEY = "5-c2VjcmV0a2V5"


def test_password_login_then_calls_reuse_the_session(host, session_for):
    session = session_for(host)
    assert session.call("system.info")["hostname"] == "nas01"
    assert session.call("core.ping") == "pong"
    assert host.counters.logins_ok == 1 and host.counters.connections == 1
    assert session.dialect == "jsonrpc" and session.uri.endswith("/api/current")


def test_wrong_password_is_an_auth_error_and_is_not_retried(make_host, session_for):
    host = make_host(clock=ManualClock(speed=1000))
    session = session_for(host, password="wrong")
    with pytest.raises(AuthError, match="username or secret refused") as failure:
        session.call("system.info")
    assert failure.value.host == "nas01"
    with pytest.raises(AuthError):
        session.call("system.info")
    assert host.counters.logins_failed == 1, "a refused credential is not tried again"
    assert host.counters.connections == 1


def test_api_key_login_and_revocation(make_host, session_for):
    """With the opt-in the key goes over ws://: fine where the server sees loopback, revoked where
    it does not (the trap the opt-in's documentation warns about)."""
    opted_in = Credentials("admin", api_key=Secret(KEY), allow_plain_api_key=True)
    host = make_host(api_keys={KEY: "admin"})
    assert session_for(host, credentials=opted_in).call("core.ping") == "pong"
    remote_like = make_host(name="nas02", api_keys={KEY: "admin"}, loopback_secure=False,
                            clock=ManualClock(speed=1000))
    with pytest.raises(AuthError, match="expired or revoked"):
        session_for(remote_like, credentials=opted_in).call("core.ping")
    assert KEY in remote_like.revoked_keys


@pytest.mark.parametrize("uri", ["ws://nas.invalid/api/current", "ws://127.0.0.1:9/api/current"])
def test_plain_api_key_is_never_sent_over_ws_without_the_opt_in(uri):
    """Loopback included: an SSH port forward or a container port mapping ends on 127.0.0.1 too.
    Without a username the key cannot go with SCRAM either, so nothing is even connected (with
    one, the host is asked first: tests/client/test_login_scram.py)."""
    session = HostSession("far", uri, Credentials(api_key=Secret(KEY)))
    with pytest.raises(InsecureCredentialError, match="revokes it for good unless it sees a secure origin.*"
                                                      "needs the key owner's username"):
        session.call("core.ping")
    assert not session.connected and session.stats.connects == 0


def test_legacy_host_is_found_without_a_path_and_uses_auth_login(make_host, session_for):
    old = make_host(version="24.10.2")
    session = session_for(old, uri=f"ws://{old.address}:{old.port}")
    assert session.call("system.info")["version"] == "TrueNAS-SCALE-24.10.2"
    assert session.dialect == "ddp" and session.uri.endswith("/websocket")
    assert session.call("core.ping") == "pong" and old.counters.connections == 1


def test_server_rate_limit_becomes_a_throttled_error(make_host, session_for):
    host = make_host(clock=ManualClock(speed=1000))
    raw = WsClient(host.uri)
    bad = {"mechanism": "PASSWORD_PLAIN", "username": "admin", "password": "x"}
    ids = [raw.request("auth.login_ex", bad) for _ in range(20)]
    assert all(raw.reply(i)["result"]["response_type"] == "AUTH_ERR" for i in ids)
    raw.close()
    with pytest.raises(ThrottledError, match="rate limit exceeded"):
        session_for(host).call("core.ping")
    assert host.counters.rate_limited == 1


def test_error_replies_keep_every_field(host, session_for):
    session = session_for(host)
    with pytest.raises(ValidationError) as invalid:
        session.call("user.get_instance", "x")
    assert invalid.value.extra == [["id", "Input should be a valid integer", 22]]
    assert invalid.value.code == -32602 and invalid.value.errname == "EINVAL"
    with pytest.raises(RemoteCallError) as missing:
        session.call("no.such.method")
    assert missing.value.code == -32601 and str(missing.value) == "nas01: Method does not exist"
    with pytest.raises(ValidationError) as unknown:
        session.call("user.get_instance", 77)
    assert unknown.value.reason == "[ENOENT] None: User 77 does not exist\n"
    assert unknown.value.trace["class"] == "ValidationErrors"


def test_replies_are_matched_out_of_order(host, session_for):
    session = session_for(host)
    session.connect()
    host.set_stall(True, methods=frozenset({"system.info"}))
    slow = gevent.spawn(session.call, "system.info")
    assert session.call("core.ping") == "pong"
    assert not slow.ready()
    host.set_stall(False)
    assert slow.get(timeout=10)["hostname"] == "nas01"


def test_fifty_concurrent_calls_never_exceed_the_window(host, session_for):
    session = session_for(host)
    session.connect()
    wait_until(lambda: session.stats.tokens == 1)  # the session token request (outside the window) is answered
    host.set_stall(True)
    calls = [gevent.spawn(session.call, "core.ping") for _ in range(50)]
    wait_until(lambda: host.counters.peak_inflight >= 10)
    assert session.in_flight == 10, "the other 40 wait locally, not on the server"
    host.set_stall(False)
    assert [c.get(timeout=10) for c in calls] == ["pong"] * 50
    assert host.counters.peak_inflight == 10 and host.counters.too_many_calls == 0


def test_a_drop_fails_calls_in_flight_unless_marked_safe(host, session_for):
    session = session_for(host)
    session.connect()
    host.set_stall(True)
    plain = gevent.spawn(session.call, "system.info")
    safe = gevent.spawn(session.call, "system.info", retry_safe=True)
    wait_until(lambda: session.in_flight == 2)
    host.drop_connections()
    with pytest.raises(ConnectionLost, match="without a close frame"):
        plain.get(timeout=10)
    host.set_stall(False)
    assert safe.get(timeout=10)["hostname"] == "nas01"
    assert host.counters.logins_ok == 2


def test_null_id_error_fails_every_pending_call(host, session_for):
    session = session_for(host)
    session.connect()
    host.set_stall(True)
    pending = [gevent.spawn(session.call, "core.ping") for _ in range(3)]
    wait_until(lambda: session.in_flight == 3)
    host.inject('{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}')
    for call in pending:
        with pytest.raises(RemoteCallError, match="Parse error"):
            call.get(timeout=10)
    host.set_stall(False)


def test_job_true_on_a_plain_method_does_not_hang(host, session_for):
    with pytest.raises(NotAJobError, match="system.version is not a job"):
        session_for(host).call("system.version", job=True)


def test_secrets_stay_out_of_logs_reprs_and_errors(make_host, session_for, caplog):
    host = make_host(clock=ManualClock(speed=1000))
    caplog.set_level(logging.DEBUG)
    session = session_for(host, password="hunter2-secret")
    with pytest.raises(AuthError) as failure:
        session.call("core.ping")
    texts = [repr(session), str(failure.value), repr(failure.value), caplog.text,
             repr(session._credentials)]
    assert not any("hunter2-secret" in text for text in texts)


def test_unix_socket_session(make_host, session_for, tmp_path):
    path = str(tmp_path / "middlewared.sock")
    host = make_host(unix_path=path)
    session = session_for(host, uri=f"ws+unix://{path}")
    assert session.call("system.info")["hostname"] == "nas01"


def test_a_session_the_server_ended_is_logged_in_again(host, session_for):
    session = session_for(host)
    assert session.call("core.ping") == "pong"
    host.expire_sessions()
    assert session.call("system.info")["hostname"] == "nas01"
    assert host.counters.logins_ok == 2 and session.stats.logins == 2


def test_a_boot_id_without_reply_fails_the_connect_by_name(host, session_for):
    """It goes out with the login and still answers within the connect timeout."""
    host.set_stall(True, frozenset({"system.boot_id"}))
    session = session_for(host, timeouts=Timeouts(connect=0.5, call=10))
    with pytest.raises(CallTimeout, match="^nas01: system.boot_id: no reply within 0.5 s"):
        session.call("core.ping")
    assert host.wait_disconnected(timeout=5), "the half set-up connection is closed"
    host.set_stall(False)
    assert session.call("core.ping") == "pong"
    assert host.counters.logins_ok == 2 and session.boot_id == host.boot_id


@pytest.mark.parametrize("stalled, named", [("core.set_options", "core.set_options"),
                                            ("core.subscribe", "subscribe core.get_jobs")])
def test_job_events_not_subscribed_in_time_fail_the_job_call_unstarted(host, session_for, stalled, named):
    session = session_for(host, timeouts=Timeouts(connect=0.5, call=10))
    assert session.call("core.ping") == "pong"
    host.set_stall(True, frozenset({stalled}))
    with pytest.raises(CallTimeout, match=f"^nas01: {named}: no reply within 0.5 s"):
        session.call("service.control", "RESTART", "nfs", job=True)
    assert host.counters.jobs_started == 0
    host.set_stall(False)
    assert session.call("service.control", "RESTART", "nfs", job=True) is True
    assert host.counters.jobs_started == 1 and host.counters.logins_ok == 1
    (conn,) = host.connections
    assert list(conn.subscriptions.values()) == ["core.get_jobs"] * 2, \
        "the failed set-up was sent again by the next job (the first subscription completed meanwhile)"


def test_a_window_smaller_than_the_set_up_still_connects(host, session_for):
    """With one call on the wire at a time the set-up calls wait for the slot instead of failing.

    No session token: its request goes outside the window, as the keepalive's probe does."""
    session = session_for(host, window=1, timeouts=Timeouts(connect=5, call=10, session_token=None))
    session.subscribe("user.query", lambda event: None)
    assert session.call("core.ping") == "pong"
    assert host.counters.peak_inflight == 1


def test_a_call_whose_send_fails_is_handed_back_unsent_and_the_link_dies(host, session_for):
    """A failed send put no whole message on the wire: start_call says "not sent" (None), settles nothing."""
    session = session_for(host)
    session.connect()
    link = session._live_link()
    link.ws._sock.shutdown(socket.SHUT_WR)  # the next send fails at once: EPIPE
    outcomes = []
    assert link.start_call("core.ping", [], lambda value, error: outcomes.append(error)) is None
    assert outcomes == [] and link.dead.is_set() and link.in_flight == 0
    assert session.call("core.ping") == "pong", "the next call goes out on a new connection"


# -- outgoing size (docs/protocol.md §2) ------------------------------------------------------
def test_a_call_over_64k_fails_unsent_and_the_calls_in_flight_are_unharmed(host, session_for):
    session = session_for(host)
    session.connect()
    host.set_stall(True, frozenset({"system.info"}))
    slow = [gevent.spawn(session.call, "system.info") for _ in range(3)]
    wait_until(lambda: session.in_flight == 3)
    with pytest.raises(RequestTooLarge, match=r"^nas01: core.ping: not sent: the request is 700\d\d characters "
                                              r"and the server takes at most 65536 for one message"):
        session.call("core.ping", "x" * 70_000)
    host.set_stall(False)
    assert [call.get(timeout=10)["hostname"] for call in slow] == ["nas01"] * 3
    assert session.call("pool.dataset.query", [["id", "=", "x" * 60_000]]) == [], "60 KB still goes"
    assert host.counters.connections == 1 and session.stats.drops == 0


def test_before_login_the_limit_is_8k(host, session_for):
    session = session_for(host, password=None)  # no credential: the connection stays anonymous
    with pytest.raises(RequestTooLarge, match=r"is 90\d\d characters and the server takes at most 8192 before login"):
        session.call("core.ping", "x" * 9_000)
    assert session.call("core.ping") == "pong" and host.counters.connections == 1


def test_a_file_upload_may_send_up_to_2_mib(host, session_for):
    """filesystem.file_receive passes the 64 KiB check; the simulator has no such method, so -32601."""
    session = session_for(host)
    with pytest.raises(RemoteCallError, match="Method does not exist"):
        session.call("filesystem.file_receive", "/tmp/f", "x" * 100_000)
    with pytest.raises(RequestTooLarge, match="at most 2097152"):
        session.call("filesystem.file_receive", "/tmp/f", "x" * 2_100_000)
    assert host.counters.connections == 1 and session.stats.drops == 0
