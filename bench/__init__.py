"""Benchmark: fleetclt against the naive thread-per-host script and an asyncio reference.

Layer: tooling outside the package; imports fleetclt (and, in the contender
workers, websocket-client or websockets). Nothing in fleetclt imports it.

Run `python -m bench` (or `python -m bench --quick`); see bench/README.md.
"""
