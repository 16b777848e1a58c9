"""The simulated fleet of a rollout test module: `SIM_HOSTS = (count, first address)` in the module."""
from __future__ import annotations

import pytest

from fleetclt.fleet.fleet import Fleet


@pytest.fixture
def sim_and_inventory(simulated_fleet, request):
    count, address = request.module.SIM_HOSTS
    return simulated_fleet(count, address)


@pytest.fixture
def sim(sim_and_inventory):
    return sim_and_inventory[0]


@pytest.fixture
def fleet(sim_and_inventory):
    with Fleet(sim_and_inventory[1]) as fleet:
        yield fleet
