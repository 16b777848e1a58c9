"""JSON-RPC framing, limits and error shapes of /api/current."""
from __future__ import annotations

import pytest

from tests.wsclient import Closed


def test_unparseable_json_gets_32700_with_null_id_and_connection_stays(client):
    client.send("{not json")
    reply = client.recv()
    assert reply["id"] is None and reply["error"]["code"] == -32700
    assert client.result("core.ping") == "pong"


def test_batch_and_non_object_messages(client):
    client.send('[{"jsonrpc": "2.0", "id": 1, "method": "core.ping"}]')
    assert client.recv()["error"] == {"code": -32700, "message": "Batch messages are not supported at this time"}
    client.send("42")
    assert client.recv()["error"] == {"code": -32700, "message": "Invalid Message Format"}


def test_invalid_requests_get_32600_only_when_they_have_an_id(client):
    client.send({"jsonrpc": "2.0", "id": "a", "method": "core.ping", "params": {"x": 1}})
    assert client.recv() == {"jsonrpc": "2.0", "id": "a", "error": {
        "code": -32600, "message": "'params' member must be of type array"}}
    client.send({"id": "b", "method": "core.ping"})
    assert client.recv()["error"]["message"] == "Missing 'jsonrpc' member"
    client.send({"jsonrpc": "2.0", "method": "core.ping", "params": {}})  # no id: silence
    client.send({"jsonrpc": "2.0", "id": "c", "method": "core.ping"})  # params default to []
    assert client.recv() == {"jsonrpc": "2.0", "result": "pong", "id": "c"}


def test_notification_runs_but_gets_no_reply(client, host):
    client.login()
    client.send({"jsonrpc": "2.0", "method": "user.create",
                 "params": [{"username": "quiet", "full_name": "Q", "password": "x"}]})
    assert client.result("user.query", [["username", "=", "quiet"]], {"count": True}) == 1


def test_unknown_method_is_32601(client):
    assert client.call("no.such")["error"] == {"code": -32601, "message": "Method does not exist"}


def test_auth_gate_error_shape(client):
    error = client.call("system.info")["error"]
    assert error["code"] == -32001 and error["message"] == "Method call error"
    data = error["data"]
    assert (data["error"], data["errname"], data["reason"]) == (207, "ENOTAUTHENTICATED",
                                                                "[ENOTAUTHENTICATED] Not authenticated")
    assert set(data["trace"]) == {"class", "formatted", "repr"} and data["extra"] is None


def test_invalid_params_triples(client):
    client.login()
    too_many = client.call("system.info", 1)["error"]
    assert too_many["code"] == -32602 and too_many["message"] == "Invalid params"
    assert too_many["data"]["error"] == 22 and too_many["data"]["errname"] == "EINVAL"
    assert too_many["data"]["extra"] == [["", "Too many arguments (expected 0, found 1)", 22]]
    wrong = client.call("user.get_instance", "abc")["error"]["data"]
    assert wrong["extra"] == [["id", "Input should be a valid integer", 22]]
    assert wrong["reason"] == "[EINVAL] id: Input should be a valid integer\n"
    missing = client.call("user.get_instance")["error"]["data"]
    assert missing["extra"] == [["id", "Field required", 22]]


def test_instance_not_found_has_enoent_in_extra(client):
    """InstanceNotFound is one ValidationError (service_exception.py): its text has no trailing
    newline, unlike the list of a ValidationErrors."""
    client.login()
    data = client.call("core.job_abort", 999)["error"]["data"]
    assert data["error"] == 22 and data["reason"] == "[ENOENT] None: Job with id 999 does not exist"
    assert data["extra"] == [[None, "Job with id 999 does not exist", 2]]


def test_binary_frame_closes_with_1003(client):
    client.send_bytes(b"\x00\x01")
    closed = client.wait_closed()
    assert closed.code == 1003 and "message type" in closed.reason


@pytest.mark.parametrize("frames", [
    [(b'{"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": ["\xff"]}', True)],
    [(b'["\xc3', True)],                                            # ends inside a character
    [(b'["\xed\xa0\x80', False)],                                   # a surrogate, first fragment only
], ids=["invalid byte", "truncated", "fails fast mid-message"])
def test_invalid_utf8_closes_1007(client, frames):
    """Checked per frame, so the last case closes before the message's final fragment."""
    for payload, fin in frames:
        client.send_raw_text_frame(payload, fin)
    assert client.wait_closed().code == 1007


def test_anonymous_message_over_8k_closes_1007(client):
    client.send({"jsonrpc": "2.0", "id": 1, "method": "core.ping", "params": ["x" * 8200]})
    assert client.wait_closed() == Closed(1007, "Anonymous connection max message length is 8 kB")


def test_authenticated_limit_is_64k_then_1009(client):
    client.login()
    big = client.call("core.ping", "x" * 9000)  # over 8k is fine once logged in
    assert big["error"]["code"] == -32602
    client.send({"jsonrpc": "2.0", "id": 2, "method": "core.ping", "params": ["x" * 65600]})
    assert client.wait_closed() == Closed(1009, "Max message length is 64 kB")


def test_file_methods_may_send_2_mib_once_logged_in(client):
    """utils/limits.py parse_message: MSG_SIZE_EXTENDED_METHODS skip the 64 KiB check, not the
    2 MiB one; the 8 KiB check before login comes first."""
    client.login()
    client.send({"jsonrpc": "2.0", "id": 1, "method": "filesystem.file_receive", "params": ["/x", "y" * 100_000]})
    assert client.reply(1)["error"]["code"] == -32601, "read and answered (the simulator has no file methods)"
    client.send({"jsonrpc": "2.0", "id": 2, "method": "filesystem.file_receive", "params": ["y" * 2_100_000]})
    assert client.wait_closed() == Closed(1009, "Max message length is 64 kB")


def test_failover_datastore_sql_is_a_file_method_only_from_25_04_1(make_host, client_for):
    """MSG_SIZE_EXTENDED_METHODS in utils/limits.py: filesystem.file_receive alone at TS-25.04.0,
    failover.datastore.sql joins it at TS-25.04.1."""
    for version, closed in (("25.04.0", True), ("25.10.1", False)):
        client = client_for(make_host(name=f"v{version}", version=version))
        client.login()
        client.send({"jsonrpc": "2.0", "id": 1, "method": "failover.datastore.sql", "params": ["y" * 70_000]})
        reply = client.recv()
        assert (reply == Closed(1009, "Max message length is 64 kB")) is closed, version


def test_twenty_first_concurrent_call_is_refused_with_32000(client, host):
    client.login()
    host.set_stall(True)
    ids = [client.request("core.ping") for _ in range(21)]
    refused = client.reply(ids[-1])
    assert refused["error"] == {"code": -32000,
                                "message": "Maximum number of concurrent calls (20) has exceeded"}
    host.set_stall(False)
    assert all(client.reply(i)["result"] == "pong" for i in ids[:20])
    assert host.counters.peak_inflight == 20 and host.counters.peak_running_calls == 10
    assert host.counters.too_many_calls == 1


def test_replies_arrive_out_of_order(client, host):
    host.faults.job_duration = 3600
    client.login()
    client.result("core.set_options", {"legacy_jobs": False})
    client.result("core.subscribe", "core.get_jobs")
    slow = client.request("update.run", {})
    added = client.wait_for(lambda m: m.get("params", {}).get("msg") == "added")
    fast = client.request("core.ping")
    assert client.wait_for(lambda m: m.get("id") in (slow, fast))["id"] == fast
    client.result("core.job_abort", added["params"]["id"])
    assert client.reply(slow) == {"jsonrpc": "2.0", "result": None, "id": slow}
