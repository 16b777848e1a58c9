"""fleetclt: one persistent, throttled JSON-RPC session per TrueNAS host, fanned out over a fleet.

The package never monkey-patches and never configures logging: it only adds a
NullHandler, so applications decide where log records go.
"""
import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
