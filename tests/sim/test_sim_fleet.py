"""Many simulated hosts in one process: own address, name, limiter, jobs and counters each."""
from __future__ import annotations

import gevent
import pytest

from fleetclt.errors import ConfigError
from fleetclt.sim import Faults, ManualClock
from fleetclt.sim.fleet import SimFleet, loopback_addresses
from tests.wsclient import WsClient


@pytest.fixture
def fleet():
    fleet = SimFleet.create(50, base_address="127.4.0.250", clock=ManualClock(speed=1000),
                            faults=Faults(job_duration=0.5), versions=("25.10.1", "24.10.2"))
    with fleet:
        yield fleet


def test_fifty_hosts_each_answer_with_their_own_identity(fleet):
    addresses = [h.address for h in fleet.hosts]
    assert len(set(addresses)) == 50 and addresses[5] == "127.4.0.255" and addresses[6] == "127.4.1.0"

    def info(host):
        client = WsClient(host.uri)
        try:
            if host.config.legacy_only:
                client.send({"msg": "connect", "version": "1", "support": ["1"]})
                client.recv()
                client.send({"msg": "method", "id": "1", "method": "system.info"})
                return client.wait_for(lambda m: m.get("id") == "1")["error"]["error"], host.name
            client.login()
            return client.result("system.info")["hostname"], host.name
        finally:
            client.close()
    results = gevent.joinall([gevent.spawn(info, h) for h in fleet.hosts], timeout=30, raise_error=True)
    values = [g.value for g in results]
    assert all(got == name for got, name in values if isinstance(got, str))
    assert sum(1 for got, _ in values if got == 207) == 25, "the 24.10 hosts gate system.info too"


def test_hosts_do_not_share_limiters_or_jobs(fleet):
    first, second = fleet.hosts[0], fleet.hosts[2]
    client = WsClient(first.uri)
    try:
        ids = [client.request("core.ping") for _ in range(20)]
        assert all(client.reply(i)["result"] == "pong" for i in ids)
        assert client.call("core.ping")["error"]["data"]["errname"] == "EBUSY"
    finally:
        client.close()
    other = WsClient(second.uri)
    try:
        assert other.result("core.ping") == "pong"
        other.login()
        assert other.result("service.control", "RESTART", "nfs") == 1, "job ids are per host"
    finally:
        other.close()
    assert first.counters.rate_limited == 1 and second.counters.rate_limited == 0


def test_inventory_references_the_password_and_names_every_host(fleet):
    inventory = fleet.inventory({"env": "PW"})
    assert inventory["defaults"]["password"] == {"env": "PW"}
    assert list(inventory["hosts"]) == [h.name for h in fleet.hosts]
    assert inventory["hosts"]["sim001"]["groups"] == ["rack01", "canary"]
    assert inventory["hosts"]["sim021"]["groups"] == ["rack02"]


def test_addresses_must_stay_on_loopback():
    with pytest.raises(ConfigError, match="127.0.0.0/8"):
        loopback_addresses("127.255.255.250", 10)
    with pytest.raises(ConfigError, match="not an IPv4 address"):
        loopback_addresses("nas01", 1)
    with pytest.raises(ConfigError):
        loopback_addresses("10.0.0.1", 1)
