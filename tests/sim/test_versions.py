"""Mixed-version fleets: 24.10 (legacy DDP only), 25.04, 25.10 and 26.0 behaviours.

Each test names the middleware source (at the release tags TS-24.10.2,
TS-25.04.2.6, TS-25.10.6, TS-26.0.0-BETA.2) of the behaviour it checks.
"""
from __future__ import annotations

import pytest

from tests.sim.test_http import http_get
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
    assert ddp_call(client, "system.info", msg_id="m3")["result"]["version"] == "TrueNAS-SCALE-24.10.2"
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
    job_id = ddp_call(client, "pool.dataset.lock", "tank/secure", msg_id="j")["result"]
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
    assert isinstance(client.result("pool.dataset.lock", "tank/secure"), int), "jobs always return ids"
    added = client.wait_for(lambda m: m.get("method") == "collection_update")
    assert "message_ids" not in added["params"]["fields"]


def test_new_host_also_serves_the_legacy_endpoint(host, client_for):
    client = client_for(host, "/websocket")
    assert ddp_connect(client)["msg"] == "connected"
    assert ddp_call(client, "core.ping")["result"] == "pong"


# -- version strings -------------------------------------------------------------------
def test_24_10_writes_its_version_long_and_later_versions_short(old_host, make_host, client_for):
    """utils/__init__.py sw_info: fullname is BRAND_PRODUCT-version, TrueNAS-SCALE up to 24.10;
    plugins/system/info.py: 24.10's system.info.version is system.version, 25.04's system.version_short."""
    client = client_for(old_host)
    ddp_connect(client)
    ddp_call(client, "auth.login", "admin", "fleetclt-sim")
    assert ddp_call(client, "system.version", msg_id="v1")["result"] == "TrueNAS-SCALE-24.10.2"
    assert ddp_call(client, "system.version_short", msg_id="v2")["result"] == "24.10.2"
    new = client_for(make_host(name="nas02", version="25.04.2"))
    new.login()
    assert new.result("system.info")["version"] == "25.04.2"
    assert new.result("system.version") == "TrueNAS-25.04.2"


# -- per-version method tables ------------------------------------------------------------
@pytest.mark.parametrize("version", ["25.10.1", "26.0.0"])
def test_from_25_10_the_update_job_is_update_run(make_host, client_for, version):
    """plugins/update_/update.py (TS-25.10.6, TS-26.0.0-BETA.2): `run` is the job, lock 'update'."""
    host = make_host(version=version)
    client = client_for(host)
    client.login()
    job_id = client.result("update.run", {"reboot": False})
    assert isinstance(job_id, int)
    assert host.engine.jobs[job_id].method == "update.run"


@pytest.mark.parametrize("version", ["25.10.1", "26.0.0"])
def test_from_25_10_update_update_is_the_update_configuration(make_host, client_for, version):
    """plugins/update_/config.py: UpdateService is a ConfigService; `update.update` is its do_update
    of {autocheck, profile} (api/v25_10_0/update.py UpdateUpdate): no job, and the job's options are
    extra inputs to it."""
    host = make_host(version=version)
    client = client_for(host)
    client.login()
    config = client.result("update.update", {"autocheck": False})
    assert config == {"id": 1, "autocheck": False, "profile": "GENERAL"} == client.result("update.config")
    refused = client.call("update.update", {"reboot": True})["error"]
    assert refused["code"] == -32602
    assert refused["data"]["extra"] == [["data.reboot", "Extra inputs are not permitted", 22]]
    assert not host.engine.jobs


@pytest.mark.parametrize("version", ["24.10.2", "25.04.2"])
def test_up_to_25_04_update_update_is_the_job_and_update_run_does_not_exist(make_host, client_for, version):
    """plugins/update.py (TS-24.10.2, TS-25.04.2.6): `update` is the job; there is no `run`."""
    host = make_host(version=version)
    path = "/websocket" if version.startswith("24") else "/api/current"
    if path == "/websocket":
        client = client_for(host)
        ddp_connect(client)
        ddp_call(client, "auth.login", "admin", "fleetclt-sim")
        assert ddp_call(client, "update.run", {}, msg_id="r")["error"]["error"] == 201
        job_id = ddp_call(client, "update.update", {}, msg_id="u")["result"]
    else:
        client = client_for(host)
        client.login()
        assert client.call("update.run", {})["error"]["code"] == -32601
        job_id = client.result("update.update", {})
    assert host.engine.jobs[job_id].method == "update.update"


def test_a_second_update_before_the_reboot_fails_with_errno_209(make_host, client_for):
    """plugins/update_/status.py status_internal (25.10+): once `update.applied` is cached, the next
    update.run's download raises CallError EREBOOTREQUIRED (209); the cache dies with middlewared."""
    host = make_host(version="25.10.1")
    client = client_for(host)
    client.login()
    client.result("core.set_options", {"legacy_jobs": False})
    assert client.result("update.run", {}) is True
    second = client.call("update.run", {})["error"]["data"]
    assert (second["error"], second["errname"]) == (209, "EREBOOTREQUIRED")
    assert client.result("update.status")["error"]["errname"] == "EREBOOTREQUIRED"
    host.restart()
    again = client_for(host)
    again.login()
    assert again.result("update.status")["code"] == "NORMAL"


# -- versioned endpoints --------------------------------------------------------------------
@pytest.mark.parametrize(("version", "newest"), [("25.04.2", "v25.04.2"), ("25.10.1", "v25.10.1"),
                                                 ("26.0.0", "v26.0.0")])
def test_a_host_serves_api_versions_up_to_its_own(make_host, client_for, version, newest):
    """main.py _load_api_versions/_create_apis: one route per api/vX directory of the release;
    api_versions_handler lists them without v24.10. TS-26.0.0-BETA.2 has no v25_10_3..5."""
    host = make_host(version=version)
    listed = http_get(host, "/api/versions")
    assert listed[0] == "v25.04.0" and listed[-1] == newest
    assert "v24.10" not in listed and "v25.10.3" not in listed
    assert client_for(host, "/api/v24.10").result("system.boot_id") == host.boot_id  # served, not listed
    with pytest.raises(Rejected) as rejected:
        client_for(host, "/api/v27.0.0")
    assert rejected.value.status == 404


def test_a_newer_api_version_than_the_host_is_not_served(make_host, client_for):
    """main.py _add_api_route: a 25.04.2 host has no route for /api/v25.10.1 (aiohttp answers 404)."""
    host = make_host(version="25.04.2")
    with pytest.raises(Rejected) as rejected:
        client_for(host, "/api/v25.10.1")
    assert rejected.value.status == 404
    assert client_for(host, "/api/v25.04.2").result("system.boot_id") == host.boot_id


def test_an_older_api_version_has_no_method_newer_than_it(make_host, client_for):
    """api/base/server/legacy_api_method.py _adapt_params: a method with no model in that API version
    raises MethodNotFoundError (utils/service/call.py): -32001 ENOMETHOD "Method 'run' not found in
    'update'". Names are never translated, so the 25.10 host has no update job at /api/v25.04.2."""
    host = make_host(version="25.10.1")
    client = client_for(host, "/api/v25.04.2")
    client.login()
    for method in ("update.run", "update.update"):
        error = client.call(method, {})["error"]
        assert error["code"] == -32001 and error["data"]["error"] == 201
    assert error["data"]["reason"] == "[ENOMETHOD] Method 'update' not found in 'update'"
    assert client.result("system.info")["version"] == "25.10.1"
    assert client_for(host, "/api/v25.10.1").call("update.run", {})["error"]["data"]["error"] == 207
