"""Fixtures: simulated hosts on loopback, torn down after each test."""
from __future__ import annotations

from collections.abc import Callable, Iterator

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


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path_factory, monkeypatch):
    """Auth budgets are shared through a state file: keep each test's to itself."""
    monkeypatch.setenv("FLEETCLT_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture
def session_for():
    """HostSessions to a simulated host, closed after the test."""
    from fleetclt.client.session import Credentials, HostSession, Timeouts
    from fleetclt.secret import Secret

    sessions = []

    def make(host, password="fleetclt-sim", username="admin", uri=None, **kwargs):
        # the first session token at once (a session's default waits 10 s for it: client/tokens.py)
        kwargs.setdefault("timeouts", Timeouts(connect=5, call=10, session_token_after=0))
        creds = kwargs.pop("credentials", Credentials(username, Secret(password) if password else None))
        session = HostSession(host.name, uri or host.uri, creds, **kwargs)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throwaway CA and a certificate for localhost / 127.0.0.1: paths, SHA-256 pin, client context."""
    import hashlib

    from gevent import ssl
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", "127.0.0.1")
    folder = tmp_path_factory.mktemp("tls")
    leaf.private_key_pem.write_to_path(folder / "key.pem")
    leaf.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    ca.cert_pem.write_to_path(folder / "ca.pem")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # gevent's class: create_default_context() is not
    ca.configure_trust(context)
    der = ssl.PEM_cert_to_DER_cert((folder / "cert.pem").read_text())
    return {"cert": str(folder / "cert.pem"), "key": str(folder / "key.pem"), "ca": str(folder / "ca.pem"),
            "pin": hashlib.sha256(der).hexdigest(), "context": context}


@pytest.fixture
def simulated_fleet(monkeypatch):
    """Start `count` simulated hosts on distinct 127.x addresses; returns (SimFleet, Inventory)."""
    import yaml

    from fleetclt.inventory.load import parse_inventory
    from fleetclt.sim.fleet import SimFleet
    started = []

    def start(count, base_address, job_duration=20.0, speed=1000.0, password="pw"):
        monkeypatch.setenv("SIMULATED_FLEET_PW", password)
        sim = SimFleet.create(count, base_address=base_address, users={"admin": password},
                              clock=SimClock(speed=speed), faults=Faults(job_duration=job_duration)).start()
        started.append(sim)
        text = yaml.safe_dump(sim.inventory({"env": "SIMULATED_FLEET_PW"}))
        return sim, parse_inventory(text, "sim.yaml")

    yield start
    for sim in started:
        sim.stop()
