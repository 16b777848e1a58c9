"""Shared bits of the simulator's auth tests: a TOTP secret, DDP calls, error errnos."""
from __future__ import annotations

from typing import Any

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"  # base32, as auth.twofactor generates
PASSWORD = "fleetclt-sim"


def login_ex(client: Any, **data: Any) -> Any:
    return client.result("auth.login_ex", data)


def error_errno(reply: dict[str, Any]) -> int:
    return int(reply["error"]["data"]["error"])


def ddp_connect(client: Any) -> Any:
    client.send({"msg": "connect", "version": "1", "support": ["1"]})
    return client.recv()


def ddp_call(client: Any, method: str, *params: Any, msg_id: str = "m1") -> Any:
    client.send({"msg": "method", "id": msg_id, "method": method, "params": list(params)})
    return client.wait_for(lambda m: m.get("id") == msg_id)
