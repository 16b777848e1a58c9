"""Exit statuses of the `fleetclt` command: the one table scripts rely on (docs/cli.md)."""
from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What a script can tell from `$?`."""

    OK = 0               # everything asked for succeeded
    FAILED = 1           # nothing ran (bad usage, broken inventory, no host matched), or a single-host call failed
    SOME_FAILED = 2      # a fan-out or rollout ran, and some host was not ok (or its journal failed)
    INTERRUPTED = 130    # Ctrl-C (128 + SIGINT)
