"""Which versioned API endpoints a simulated host serves (docs/protocol.md §1).

Middlewared serves one route `/api/vX` per `api/vX_Y_Z` directory its release
ships, plus `/api/current` (main.py `_load_api_versions`, `_create_apis`), and
`GET /api/versions` lists them without v24.10 (main.py `api_versions_handler`).
A release ships the directories up to its own version: TS-25.04.2 has v24_10 to
v25_04_2, TS-25.10.1 v24_10 to v25_10_1. 26.0 branched before v25_10_3..5 were
added on the 25.10 branch, so TS-26.0.0-BETA.2 goes from v25_10_2 to v26_0_0.
24.10 has no /api routes at all, only /websocket.
"""
from __future__ import annotations

from .config import version_tuple

API_DIRECTORIES = ("v24.10", "v25.04.0", "v25.04.1", "v25.04.2", "v25.10.0", "v25.10.1", "v25.10.2",
                   "v25.10.3", "v25.10.4", "v25.10.5", "v26.0.0", "v27.0.0")
_ONLY_ON_25_10 = frozenset({"v25.10.3", "v25.10.4", "v25.10.5"})
UNLISTED = "v24.10"


def served_api_versions(host_version: str) -> list[str]:
    """The API versions a host of `host_version` has a route for, oldest first."""
    host = version_tuple(host_version)
    if host < (25, 4):
        return []
    return [name for name in API_DIRECTORIES
            if version_tuple(name[1:]) <= host and not (host >= (26,) and name in _ONLY_ON_25_10)]


def endpoint_api_version(path: str, host_version: str) -> tuple[int, ...] | None:
    """The API version a websocket path pins: None for /api/current, /websocket and the host's newest.

    The newest directory is served by the same API object as /api/current
    (main.py `_create_apis`); every older one goes through LegacyAPIMethod.
    """
    name = path.removeprefix("/api/")
    served = served_api_versions(host_version)
    if not served or name not in served or name == served[-1]:
        return None
    return version_tuple(name[1:])
