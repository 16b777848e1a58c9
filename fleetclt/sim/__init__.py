"""A TrueNAS-like middleware simulator: real websocket servers on loopback.

    from fleetclt.sim.fleet import SimFleet

    fleet = SimFleet.create(count=3)      # three hosts on 127.1.0.1..3
    fleet.start()
    fleet.hosts[0].faults.latency = 0.2   # flip a fault on a live host
"""
from . import api_auth, api_core, api_domain, api_files, api_upload  # noqa: F401  (registers the methods)
from .clock import ManualClock, SimClock
from .config import Counters, Faults, HostConfig
from .host import SimHost

__all__ = ["ManualClock", "Counters", "Faults", "HostConfig", "SimClock", "SimHost"]
