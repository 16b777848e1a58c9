"""Subscriptions: registered only once accepted, refusals raised and never re-sent, ends delivered."""
from __future__ import annotations

import errno
import json

import pytest
from gevent.queue import Queue

from fleetclt.client.session import SubscriptionEnded
from fleetclt.errors import RemoteCallError, ValidationError
from fleetclt.sim.failures import ENOTAUTHENTICATED, CallError
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
