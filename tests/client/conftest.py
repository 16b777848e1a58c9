"""Fixtures of the client tests."""
from __future__ import annotations

import pytest

from tests.faultproxy import FaultProxy


@pytest.fixture
def proxied(session_for):
    """A session to `host` through a fault proxy (JSON-RPC, or DDP on 24.10), and the proxy."""
    proxies = []

    def make(host, **kwargs):
        proxy = FaultProxy((host.address, host.port)).start()
        proxies.append(proxy)
        path = "/websocket" if host.config.legacy_only else "/api/current"
        return session_for(host, uri=proxy.uri(path=path), **kwargs), proxy

    yield make
    for proxy in proxies:
        proxy.close()
