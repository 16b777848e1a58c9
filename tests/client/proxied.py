"""Cutting a proxied session's connection (tests/faultproxy.py) mid-call."""
from __future__ import annotations

import pytest

from fleetclt.errors import ConnectionLost


def cut(session, proxy):
    """Reset the connection as the next reply comes down; the call it carried may have run."""
    proxy.faults.reset_after = proxy.down_bytes
    with pytest.raises(ConnectionLost):
        session.call("core.ping")
    proxy.faults.reset_after = None
