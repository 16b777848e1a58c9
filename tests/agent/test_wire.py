"""The agent's wire alone: framing and message shapes, bytes in and out, no sockets."""
from __future__ import annotations

import datetime as dt
import ipaddress

import orjson
import pytest

from fleetclt.agent import wire


def test_a_line_split_anywhere_decodes_once_whole():
    data = wire.encode({"kind": "host", "text": "é"}) + wire.encode(wire.end())
    for cut in range(len(data) + 1):
        decoder = wire.LineDecoder()
        messages = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert messages == [{"kind": "host", "text": "é"}, {"kind": "end"}]
        assert not decoder.pending


def test_a_partial_line_is_pending_until_its_end_comes():
    decoder = wire.LineDecoder()
    assert decoder.feed(b'{"kind": "en') == [] and decoder.pending
    assert decoder.feed(b'd"}\n') == [{"kind": "end"}] and not decoder.pending


@pytest.mark.parametrize("line", [b"not json\n", b"[1, 2]\n", b'"text"\n'])
def test_a_line_that_is_no_object_is_refused(line):
    with pytest.raises(wire.WireError):
        wire.LineDecoder().feed(line)


def test_a_line_longer_than_the_limit_is_refused_before_it_ends():
    decoder = wire.LineDecoder(max_line=10)
    with pytest.raises(wire.WireError, match="longer than 10 bytes"):
        decoder.feed(b"x" * 11)


def test_values_json_has_no_type_for_are_written_as_the_cli_prints_them():
    when = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    line = wire.encode({"at": when, "tags": {"a"}, "net": ipaddress.ip_interface("10.0.0.1/24"), 1: "x"})
    assert orjson.loads(line) == {"at": when.isoformat(), "tags": ["a"], "net": "10.0.0.1/24", "1": "x"}
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_a_run_request_survives_the_wire():
    request = wire.Request(wire.RUN, hosts="rack01,!canary", deadline=2.5, forks=3, version="1.0",
                           work=wire.HostWork("call", "pool.dataset.lock", ["tank/x", {"a": 1}], job=True, timeout=9))
    [message] = wire.LineDecoder().feed(wire.encode(request.to_message()))
    assert message["v"] == wire.VERSION and "max_connecting" not in message  # unset values are left out
    assert wire.parse_request(message) == request


@pytest.mark.parametrize(("message", "problem"), [
    ({"v": 99, "op": "status"}, "wire version 99"),
    ({"op": "status"}, "wire version None"),
    ({"v": wire.VERSION, "op": "reboot"}, "unknown op 'reboot'"),
    ({"v": wire.VERSION, "op": "run", "forks": "many"}, "forks is str"),
    ({"v": wire.VERSION, "op": "run", "forks": True}, "forks is bool"),
    ({"v": wire.VERSION, "op": "run", "work": {"command": "call", "extra": 1}}, "malformed run request"),
])
def test_a_malformed_request_is_refused_with_the_reason(message, problem):
    with pytest.raises(wire.WireError, match=problem):
        wire.parse_request(message)


def test_replies_carry_their_kind_and_expect_checks_it():
    assert wire.expect(wire.selected("/inv.yaml", ["a"], []), wire.SELECTED)["names"] == ["a"]
    assert wire.host({"host": "a", "elapsed": 0.001}, 0.00123, "")["result"]["elapsed"] == 0.00123
    assert wire.error("no host matches", wire.USAGE) == {"kind": "error", "why": "usage", "message": "no host matches"}
    with pytest.raises(wire.WireError, match="expected a rows line, got 'end'"):
        wire.expect(wire.end(), wire.ROWS)
