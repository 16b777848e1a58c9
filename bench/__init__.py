"""Benchmark: fleetclt against the naive thread-per-host script and an asyncio reference.

Run `python -m bench` (or `python -m bench --quick`); see bench/README.md.
"""
