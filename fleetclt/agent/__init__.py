"""The fleetclt agent: one process per user and inventory that keeps the sessions between commands.

See docs/agent.md. `wire` is the framing and the message shapes (pure, no I/O),
`work` what a fleet command does on each host (shared with the CLI's direct
path), `peer` the same-user check, `fleets` the agent's Fleet over its
inventory, `server` the Unix socket server, `__main__` the process.
"""
