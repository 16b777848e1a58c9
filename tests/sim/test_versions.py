"""Mixed-version fleets: 24.10 (legacy DDP only), 25.04 and 25.10 behaviours."""
from __future__ import annotations

import pytest

from tests.wsclient import Rejected


@pytest.fixture
def old_host(make_host):
    return make_host(version="24.10.2")


def ddp_connect(client):
    client.send({"msg": "connect", "version": "1", "support": ["1"]})
    return client.recv()


def ddp_call(client, method, *params, msg_id="m1"):
    client.send({"msg": "method", "id": msg_id, "method": method, "params": list(params)})
    return client.wait_for(lambda m: m.get("id") == msg_id)


def test_old_host_redirects_api_current_like_pre_25_04_hosts(old_host, client_for):
    with pytest.raises(Rejected) as rejected:
        client_for(old_host, "/api/current")
    assert rejected.value.status == 302 and rejected.value.headers["location"] == "/ui/"
    assert old_host.uri.endswith("/websocket")


def test_ddp_handshake_call_and_errors(old_host, client_for):
    client = client_for(old_host)
    client.send({"msg": "method", "id": "early", "method": "core.ping"})
    assert client.recv() == {"msg": "failed", "version": "1"}
    assert ddp_connect(client)["msg"] == "connected"
    gated = ddp_call(client, "system.info")
    assert gated["msg"] == "result" and gated["error"]["error"] == 207
    assert ddp_call(client, "auth.login", "admin", "fleetclt-sim", msg_id="m2")["result"] is True
    assert ddp_call(client, "system.info", msg_id="m3")["result"]["version"] == "24.10.2"
    invalid = ddp_call(client, "user.get_instance", "x", msg_id="m4")["error"]
    assert invalid["type"] == "VALIDATION" and invalid["error"] == 22
    assert invalid["extra"] == [["id", "Input should be a valid integer", 22]]
    several = ddp_call(client, "user.create", {}, msg_id="m5")["error"]
    assert several["type"] == "VALIDATION" and several["error"] == 11 and several["errname"] == "EAGAIN"
    assert ddp_call(client, "auth.login_ex", {}, msg_id="m6")["error"]["error"] == 201


def test_ddp_subscription_and_job_events(old_host, client_for):
    client = client_for(old_host)
    ddp_connect(client)
    ddp_call(client, "auth.login", "admin", "fleetclt-sim")
    client.send({"msg": "sub", "id": "s1", "name": "core.get_jobs"})
    assert client.recv() == {"msg": "ready", "subs": ["s1"]}
    job_id = ddp_call(client, "service.restart", "nfs", msg_id="j")["result"]
    added = client.wait_for(lambda m: m.get("msg") == "added")
    assert added["collection"] == "core.get_jobs" and added["id"] == job_id
    assert "message_ids" not in added["fields"]
    final = client.wait_for(lambda m: m.get("msg") == "changed" and m["fields"]["time_finished"])
    assert final["fields"]["state"] == "SUCCESS"


def test_ddp_ping_is_answered_only_by_old_hosts(old_host, make_host, client_for):
    old = client_for(old_host)
    ddp_connect(old)
    old.send({"msg": "ping", "id": "p"})
    assert old.recv() == {"msg": "pong", "id": "p"}
    new = client_for(make_host(name="nas02"), "/websocket")
    ddp_connect(new)
    new.send({"msg": "ping", "id": "p"})
    new.send({"msg": "method", "id": "after", "method": "core.ping"})
    assert new.recv() == {"msg": "result", "id": "after", "result": "pong"}


def test_old_hosts_rate_limit_even_authenticated_no_auth_calls(old_host, client_for):
    client = client_for(old_host)
    ddp_connect(client)
    ddp_call(client, "auth.login", "admin", "fleetclt-sim")
    for index in range(20):
        assert ddp_call(client, "system.boot_id", msg_id=f"b{index}")["result"]
    assert ddp_call(client, "system.boot_id", msg_id="last")["error"]["errname"] == "EBUSY"


def test_25_04_host(make_host, client_for):
    client = client_for(make_host(version="25.04.2"))
    assert client.result("core.set_options", {"legacy_jobs": False}) is None
    assert client.call("core.ping")["error"]["data"]["error"] == 207, "core.ping needed auth on 25.04"
    client.login()
    client.result("core.subscribe", "core.get_jobs")
    assert isinstance(client.result("service.restart", "nfs"), int), "jobs always return ids"
    added = client.wait_for(lambda m: m.get("method") == "collection_update")
    assert "message_ids" not in added["params"]["fields"]


def test_new_host_also_serves_the_legacy_endpoint(host, client_for):
    client = client_for(host, "/websocket")
    assert ddp_connect(client)["msg"] == "connected"
    assert ddp_call(client, "core.ping")["result"] == "pong"
