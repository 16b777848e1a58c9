"""Who may subscribe to what, and event sources that end with notify_unsubscribed."""
from __future__ import annotations

import errno
import json

import pytest

from fleetclt.sim.failures import CallError

TAIL = "filesystem.file_tail_follow"


def tail(path: str, lines: int = 3) -> str:
    return f"{TAIL}:" + json.dumps({"path": path, "tail_lines": lines})


def restrict(host, role: str = "READONLY_ADMIN") -> None:
    host.data.users[0]["roles"] = [role]


def test_a_full_admin_may_subscribe_to_any_name(client):
    """service/core_service.py subscribe -> main.py can_subscribe: authorize('SUBSCRIBE', name)
    holds for FULL_ADMIN whether or not the name is a registered event."""
    client.login()
    for name in ("no.such.event", "pool.query", "*"):
        assert isinstance(client.result("core.subscribe", name), str)


@pytest.mark.parametrize("name, allowed", [("no.such.event", False), ("*", False), ("pool.query", True),
                                           ("core.get_jobs", True)])
def test_a_restricted_user_gets_eacces_for_names_its_roles_do_not_cover(host, client, name, allowed):
    """main.py can_subscribe: core.get_jobs needs no authorization; other names need a role
    that covers them (api/base/server/ws_handler/rpc.py answers CallError EACCES)."""
    restrict(host)
    client.login()
    reply = client.call("core.subscribe", name)
    if allowed:
        assert isinstance(reply["result"], str)
    else:
        assert reply["error"]["data"]["error"] == errno.EACCES
        assert reply["error"]["data"]["reason"] == "[EACCES] Not authorized"


def test_an_event_source_sends_its_tail_then_new_text_then_ends_with_the_error(host, client):
    """plugins/filesystem.py FileFollowTailEventSource; event.py process: run() raising ends every
    subscriber with notify_unsubscribed carrying the error (rpc.py notify_unsubscribed, no trace)."""
    host.sources.files["/var/log/app.log"] = "one\ntwo\nthree\nfour\n"
    client.login()
    name = tail("/var/log/app.log", 2)
    client.result("core.subscribe", name)
    first = client.wait_for(lambda m: m.get("method") == "collection_update")
    assert first["params"]["collection"] == name and first["params"]["fields"] == {"data": "three\nfour\n"}
    host.sources.append("/var/log/app.log", "five\n")
    assert client.wait_for(lambda m: m.get("method") == "collection_update")["params"]["fields"] == {"data": "five\n"}
    host.sources.end(name, CallError("log rotated away", errno.ENOENT))
    notice = client.wait_for(lambda m: m.get("method") == "notify_unsubscribed")
    assert notice["params"] == {"collection": name, "error": {
        "error": errno.ENOENT, "errname": "ENOENT", "reason": "[ENOENT] log rotated away", "trace": None,
        "extra": None}}


def test_a_source_whose_file_is_missing_ends_at_once_without_error(client):
    """FileFollowTailEventSource.run_sync returns when the path does not exist; event.py process
    then runs unsubscribe_all(None)."""
    client.login()
    name = tail("/var/log/nope.log")
    assert isinstance(client.result("core.subscribe", name), str)
    notice = client.wait_for(lambda m: m.get("method") == "notify_unsubscribed")
    assert notice["params"] == {"collection": name, "error": None}


def test_a_bad_argument_ends_the_subscription_before_core_subscribe_answers(client):
    """common/event_source/manager.py subscribe: validate_arg fails, unsubscribe(ident, error) sends
    notify_unsubscribed, and core.subscribe still returns the id afterwards."""
    client.login()
    name = f"{TAIL}:" + json.dumps({"tail_lines": 3})
    msg_id = client.request("core.subscribe", name)
    notice = client.recv()
    assert notice["method"] == "notify_unsubscribed" and notice["params"]["collection"] == name
    assert notice["params"]["error"]["extra"] == [["path", "Field required", errno.EINVAL]]
    assert isinstance(client.reply(msg_id)["result"], str)


def test_unsubscribing_a_source_says_so_and_a_plain_event_says_nothing(host, client):
    """manager.py unsubscribe terminates with error None; rpc.py unsubscribe of a plain name only
    forgets it."""
    client.login()
    plain = client.result("core.subscribe", "pool.query")
    source = client.result("core.subscribe", tail("/var/log/middlewared.log"))
    client.wait_for(lambda m: m.get("method") == "collection_update")
    assert client.result("core.unsubscribe", plain) is None
    assert client.result("core.unsubscribe", source) is None
    remaining = [m for m in client.inbox if m.get("method") == "notify_unsubscribed"]
    assert remaining == [{"jsonrpc": "2.0", "method": "notify_unsubscribed", "params": {
        "collection": tail("/var/log/middlewared.log"), "error": None}}]
    host.publish("pool.query", "added", 1, {"id": 1})  # rpc.py `send_event` skips a name no ident has
    host.sources.append("/var/log/middlewared.log", "later\n")  # the last subscriber left: instance cancelled
    client.inbox.clear()
    assert client.result("core.ping") == "pong"
    assert not host.sources._instances and not [m for m in client.inbox if m.get("method") == "collection_update"]


@pytest.mark.parametrize("version", ["25.04.2", "25.10.1", "26.0.0-BETA.2"])
def test_logout_ends_sources_with_a_notice_and_keeps_plain_events(make_host, client_for, version):
    """plugins/auth.py `logout` calls common/event_source/manager.py `unsubscribe_app` from 25.04:
    each source ends with error null. Plain subscriptions stay in the app's table and main.py
    `send_event` does not check the login, so their events keep coming."""
    host = make_host(version=version)
    client = client_for(host)
    client.login()
    client.result("core.subscribe", "user.query")
    source = tail("/var/log/middlewared.log")
    client.result("core.subscribe", source)
    assert client.result("auth.logout") is True
    host.publish("user.query", "added", 99, {"id": 99})
    event = client.wait_for(lambda m: m.get("method") == "collection_update"
                            and m["params"]["collection"] == "user.query")
    assert event["params"]["id"] == 99
    notices = [m["params"] for m in client.inbox if m.get("method") == "notify_unsubscribed"]
    assert notices == [{"collection": source, "error": None}]


def legacy_login(client):
    """Connect and log in over 24.10's /websocket dialect (DDP)."""
    client.send({"msg": "connect", "version": "1", "support": ["1"]})
    assert client.recv()["msg"] == "connected"
    client.send({"msg": "method", "id": "l", "method": "auth.login", "params": ["admin", "fleetclt-sim"]})
    assert client.recv()["result"] is True


def test_logout_on_24_10_keeps_every_subscription(make_host, client_for):
    """24.10 plugins/auth.py `logout` only drops the session: no `nosub` for a source, and
    plain events keep coming."""
    host = make_host(version="24.10.2")
    client = client_for(host)
    legacy_login(client)
    client.send({"msg": "sub", "id": "p", "name": "user.query"})
    client.send({"msg": "sub", "id": "s", "name": tail("/var/log/middlewared.log")})
    client.send({"msg": "method", "id": "o", "method": "auth.logout", "params": []})
    assert client.wait_for(lambda m: m.get("id") == "o")["result"] is True
    host.publish("user.query", "added", 99, {"id": 99})
    assert client.wait_for(lambda m: m.get("collection") == "user.query")["id"] == 99
    assert not [m for m in client.inbox if m.get("msg") == "nosub"]


def test_legacy_dialect_ends_a_source_with_nosub(make_host, client_for):
    """24.10 common/event_source/manager.py AppSubscriber.terminate: `nosub` with an `error`
    only when there is one."""
    old = make_host(version="24.10.2")
    client = client_for(old)
    legacy_login(client)
    name = tail("/var/log/nope.log")
    client.send({"msg": "sub", "id": "s1", "name": name})
    assert client.wait_for(lambda m: m.get("msg") == "nosub") == {"msg": "nosub", "collection": name}


def test_legacy_unsub_gets_no_answer_ends_a_source_with_nosub_and_stops_events(make_host, client_for):
    """24.10 main.py `on_message` handles `unsub` inline (`unsubscribe`, no reply) before it reads
    the next message; manager.py `unsubscribe` ends a source with `nosub`, no error."""
    host = make_host(version="24.10.2")
    client = client_for(host)
    legacy_login(client)
    name = tail("/var/log/middlewared.log")
    client.send({"msg": "sub", "id": "p", "name": "pool.query"})
    client.send({"msg": "sub", "id": "s", "name": name})
    client.wait_for(lambda m: m.get("msg") == "added" and m.get("collection") == name)
    client.send({"msg": "unsub", "id": "p"})
    client.send({"msg": "unsub", "id": "s"})
    client.send({"msg": "method", "id": "after", "method": "core.ping", "params": []})
    client.wait_for(lambda m: m.get("id") == "after")
    assert [m for m in client.inbox if m.get("msg") not in ("ready", "added")] == [
        {"msg": "nosub", "collection": name}], "nosub came before the answer to what followed the unsub"
    host.publish("pool.query", "added", 1, {"id": 1})
    host.sources.append("/var/log/middlewared.log", "later\n")
    client.inbox.clear()
    client.send({"msg": "method", "id": "last", "method": "core.ping", "params": []})
    assert client.wait_for(lambda m: m.get("id") == "last")["result"] == "pong"
    assert not client.inbox and not host.sources._instances and not list(host.connections)[0].subscriptions
