"""The official client's message flow (docs/protocol.md §13) against the simulator."""
from __future__ import annotations


def test_official_client_flow(client, host):
    options = client.call("core.set_options", {"legacy_jobs": False, "private_methods": False,
                                               "py_exceptions": False})
    assert options["result"] == {"legacy_jobs": False, "private_methods": False, "py_exceptions": False}
    early = client.call("core.subscribe", "core.get_jobs")
    assert early["error"]["data"]["errname"] == "ENOTAUTHENTICATED"
    login = client.result("auth.login_ex", {"mechanism": "PASSWORD_PLAIN", "username": "admin",
                                            "password": "fleetclt-sim"})
    assert login["response_type"] == "SUCCESS"
    sub_id = client.result("core.subscribe", "core.get_jobs")
    assert len(sub_id) == 36
    info = client.result("system.info")
    assert info["hostname"] == host.name and set(info["datetime"]) == {"$date"}
    call_id = client.request("update.run", {})
    added = client.wait_for(lambda m: m.get("method") == "collection_update")
    assert added["params"]["msg"] == "added" and call_id in added["params"]["fields"]["message_ids"]
    job_id = added["params"]["id"]
    final = client.reply(call_id)
    assert final["result"] is True
    assert client.result("core.get_jobs", [["id", "=", job_id]], {"get": True})["state"] == "SUCCESS"
    assert client.result("core.ping") == "pong"
