"""auth.generate_token answers a bare string: the --debug frame log masks it by the call's id."""
from __future__ import annotations

import json

from fleetclt.protocol.redact import MASK, redact_frame

TOKEN = "tKn-" + "x" * 60


def test_the_reply_to_a_generate_token_call_is_masked_and_no_other():
    request = json.dumps({"jsonrpc": "2.0", "id": "ab12-7", "method": "auth.generate_token",
                          "params": [300, {}, True, True]})
    assert json.loads(redact_frame(request))["params"] == [300, {}, True, True]
    other = json.dumps({"jsonrpc": "2.0", "id": "ab12-8", "result": "plain text"})
    assert json.loads(redact_frame(other))["result"] == "plain text"
    logged = redact_frame(json.dumps({"jsonrpc": "2.0", "id": "ab12-7", "result": TOKEN}))
    assert TOKEN not in logged and json.loads(logged)["result"] == MASK
    again = json.dumps({"jsonrpc": "2.0", "id": "ab12-7", "result": "the id is not reused"})
    assert json.loads(redact_frame(again))["result"] == "the id is not reused"


def test_the_legacy_dialect_is_masked_too_and_an_error_reply_ends_the_watch():
    redact_frame(json.dumps({"msg": "method", "id": "c0de-3", "method": "auth.generate_token",
                             "params": [300, {}, True]}))
    logged = redact_frame(json.dumps({"msg": "result", "id": "c0de-3", "result": TOKEN}))
    assert TOKEN not in logged
    redact_frame(json.dumps({"msg": "method", "id": "c0de-4", "method": "auth.generate_token", "params": []}))
    failed = json.loads(redact_frame(json.dumps({"msg": "result", "id": "c0de-4",
                                                 "error": {"error": 13, "reason": "Not authenticated"}})))
    assert failed["error"]["reason"] == "Not authenticated"
    assert json.loads(redact_frame(json.dumps({"msg": "result", "id": "c0de-4", "result": "x"})))["result"] == "x"
