"""Fixtures: simulated hosts on loopback, torn down after each test."""
from __future__ import annotations

from typing import Callable, Iterator

import pytest

from fleetclt.sim import Faults, HostConfig, SimClock, SimHost
from tests.wsclient import WsClient


@pytest.fixture
def make_host() -> Iterator[Callable[..., SimHost]]:
    hosts: list[SimHost] = []

    def make(name: str = "nas01", clock: SimClock | None = None, faults: Faults | None = None,
             **config: object) -> SimHost:
        host = SimHost(HostConfig(name, **config), clock=clock or SimClock(speed=100),
                       faults=faults or Faults(job_duration=0.5)).start()
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.stop()


@pytest.fixture
def host(make_host: Callable[..., SimHost]) -> SimHost:
    return make_host()


@pytest.fixture
def client_for() -> Iterator[Callable[..., WsClient]]:
    clients: list[WsClient] = []

    def connect(host: SimHost, path: str | None = None, **kwargs: object) -> WsClient:
        url = host.uri if path is None else f"ws://{host.address}:{host.port}{path}"
        client = WsClient(url, **kwargs)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.fixture
def client(host: SimHost, client_for: Callable[..., WsClient]) -> WsClient:
    return client_for(host)
