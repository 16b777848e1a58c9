"""Subscriptions: registered only once accepted, refusals raised and never re-sent, ends delivered."""
from __future__ import annotations

import errno
import json

import pytest
from gevent.queue import Queue

from fleetclt.client.session import SubscriptionEnded
from fleetclt.errors import RemoteCallError, ValidationError
from fleetclt.sim.failures import ENOTAUTHENTICATED, CallError
from tests.client.proxied import cut
from tests.helpers import wait_until


def tail(path: str, lines: int = 3) -> str:
    return "filesystem.file_tail_follow:" + json.dumps({"path": path, "tail_lines": lines})


def subscribed(host):
    """The plain events each open connection of the host is subscribed to."""
    return [sorted(conn.subscriptions.values()) for conn in host.connections]


def reconnect(host, session):
    logins, drops = host.counters.logins_ok, session.stats.drops
    host.drop_connections()
    wait_until(lambda: session.stats.drops > drops)  # a background reconnect may already be back
    assert session.call("core.ping") == "pong"
    assert host.counters.logins_ok == logins + 1


def test_a_refused_subscription_raises_leaves_the_session_usable_and_is_never_sent_again(host, session_for):
    host.data.users[0]["roles"] = ["READONLY_ADMIN"]
    session = session_for(host)
    with pytest.raises(RemoteCallError, match="Not authorized") as refused:
        session.subscribe("no.such.event", lambda event: None)
    assert refused.value.errno == errno.EACCES
    assert session.call("core.ping") == "pong"
    session.subscribe("pool.query", lambda event: None)
    reconnect(host, session)
    assert subscribed(host) == [["pool.query"]], "only the accepted one came back"


def test_a_full_admin_subscribes_to_any_name_and_keeps_it_across_reconnects(host, session_for):
    session = session_for(host)
    seen = []
    session.subscribe("custom.event", seen.append)
    reconnect(host, session)
    assert subscribed(host) == [["custom.event"]]
    host.publish("custom.event", "changed", 7, {"x": 1})
    wait_until(lambda: seen)
    assert seen[0].id == 7 and seen[0].fields == {"x": 1}


def test_notify_unsubscribed_reaches_the_subscriber_and_ends_the_subscription(host, session_for):
    name = tail("/var/log/middlewared.log", 1)
    session = session_for(host)
    events, ends = Queue(), Queue()
    session.subscribe(name, events.put, on_end=ends.put)
    assert events.get(timeout=10).fields == {"data": "ready\n"}
    host.sources.end(name, CallError("log rotated away", errno.ENOENT))
    ended = ends.get(timeout=10)
    assert isinstance(ended, SubscriptionEnded) and ended.collection == name and not ended.resubscribing
    assert ended.error is not None and ended.error.errno == errno.ENOENT and "log rotated away" in str(ended.error)
    reconnect(host, session)
    assert not any(instance for instance in host.sources._instances), "not sent again after the reconnect"
    assert events.empty()


def test_a_source_that_ends_at_once_still_reaches_the_subscriber(host, session_for):
    """The end may come before or after core.subscribe answers; either way the subscriber hears it."""
    session = session_for(host)
    ends = Queue()
    session.subscribe(tail("/var/log/missing.log"), lambda event: None, on_end=ends.put)
    ended = ends.get(timeout=10)
    assert ended.error is None and not ended.resubscribing


def test_an_argument_the_source_rejects_raises_to_the_caller(host, session_for):
    """The server answers core.subscribe with an id after ending the subscription with the error."""
    session = session_for(host)
    name = "filesystem.file_tail_follow:" + json.dumps({"tail_lines": 2})
    with pytest.raises(ValidationError, match="path: Field required") as rejected:
        session.subscribe(name, lambda event: None)
    assert rejected.value.extra == [["path", "Field required", errno.EINVAL]]
    assert session.call("core.ping") == "pong"


def test_a_subscription_the_server_ended_with_the_login_comes_back(host, session_for):
    name = tail("/var/log/middlewared.log", 1)
    session = session_for(host)
    events, ends = Queue(), Queue()
    session.subscribe(name, events.put, on_end=ends.put)
    events.get(timeout=10)
    host.sources.end(name, CallError("Not authenticated", ENOTAUTHENTICATED))
    assert ends.get(timeout=10).resubscribing
    assert events.get(timeout=10).fields == {"data": "ready\n"}, "subscribed again: the source starts over"
    host.sources.append("/var/log/middlewared.log", "later\n")
    assert events.get(timeout=10).fields == {"data": "later\n"}


# -- unsubscribe: common/event_source/manager.py `unsubscribe`, api/base/server/ws_handler/rpc.py and
# 24.10 main.py `unsubscribe` (core.unsubscribe, DDP unsub), modelled in fleetclt/sim/api_core.py and ddp.py

def on_server(host, name):
    """How many subscriptions to `name` each open connection of the host holds, plain or source."""
    instance = host.sources._instances.get(name)
    sources = [] if instance is None else list(instance.subscribers.values())
    return [list(conn.subscriptions.values()).count(name) + sources.count(conn) for conn in host.connections]


def published_and_flushed(host, session, number):
    """Publish an event, then a round trip: what the server sent for it has arrived by then."""
    host.publish("custom.event", "changed", number, {"n": number})
    assert session.call("core.ping") == "pong"


@pytest.mark.parametrize("version", ["25.10.1", "24.10.2"])
def test_unsubscribe_stops_events_and_a_reconnect_does_not_send_it_again(make_host, proxied, version):
    """api/base/server/ws_handler/rpc.py `unsubscribe` (24.10: main.py, DDP `unsub`) pops the subscription:
    `send_event` sends that connection nothing more."""
    host = make_host(version=version)
    session, proxy = proxied(host)
    events = Queue()
    session.subscribe("custom.event", events.put)
    published_and_flushed(host, session, 1)
    assert events.get(timeout=10).id == 1
    session.unsubscribe("custom.event", events.put)
    assert on_server(host, "custom.event") == [0]
    published_and_flushed(host, session, 2)
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert session.stats.connects == 2 and on_server(host, "custom.event") == [0], "not sent again"
    published_and_flushed(host, session, 3)
    assert events.empty()
    assert host.counters.calls_by_method["core.unsubscribe"] == (0 if host.config.legacy_only else 1)


@pytest.mark.parametrize("version", ["25.10.1", "24.10.2"])
def test_two_subscribers_share_one_server_subscription_until_the_last_leaves(make_host, proxied, version):
    """common/event_source/manager.py `unsubscribe` ends a source subscription with a notice, error null
    (24.10: DDP nosub): it comes before unsubscribe returns and ends nothing the session still has."""
    host = make_host(version=version)
    session, proxy = proxied(host)
    name = tail("/var/log/middlewared.log", 1)
    first, second, ends = Queue(), Queue(), Queue()
    session.subscribe(name, first.put, on_end=ends.put)
    assert first.get(timeout=10).fields == {"data": "ready\n"}
    session.subscribe(name, second.put, on_end=ends.put)
    assert on_server(host, name) == [1]
    session.unsubscribe(name, first.put)
    assert on_server(host, name) == [1]
    host.sources.append("/var/log/middlewared.log", "later\n")
    assert second.get(timeout=10).fields == {"data": "later\n"}
    cut(session, proxy)
    assert session.call("core.ping") == "pong"
    assert on_server(host, name) == [1], "the one left is sent again, once"
    assert second.get(timeout=10).fields == {"data": "later\n"}, "a new subscription: the source's tail"
    session.unsubscribe(name, second.put)
    assert on_server(host, name) == [0] and not host.sources._instances
    assert session.call("core.ping") == "pong"
    assert first.empty() and second.empty() and ends.empty()
    session.subscribe(name, first.put)  # subscribed afresh: the source starts over
    assert first.get(timeout=10).fields == {"data": "later\n"}


def test_unsubscribing_job_events_keeps_the_sessions_own(host, session_for):
    session = session_for(host)
    seen = []
    session.subscribe("core.get_jobs", seen.append)
    session.unsubscribe("core.get_jobs", seen.append)
    assert on_server(host, "core.get_jobs") == [1] and host.counters.calls_by_method["core.unsubscribe"] == 0
    assert session.call("core.ping") == "pong"
    assert not seen


def test_unsubscribing_while_disconnected_just_forgets_it(host, proxied):
    session, proxy = proxied(host)
    events = Queue()
    session.subscribe("custom.event", events.put)
    proxy.faults.blackhole = True  # reconnects hang: the session stays without a connection
    proxy.faults.reset_after = proxy.down_bytes
    host.publish("custom.event", "changed", 1, {"n": 1})
    wait_until(lambda: not session.connected)
    session.unsubscribe("custom.event", events.put)
    assert host.counters.calls_by_method["core.unsubscribe"] == 0
    proxy.faults.blackhole, proxy.faults.reset_after = False, None
    assert session.call("core.ping") == "pong"
    assert on_server(host, "custom.event") == [0] and events.empty()
