"""What a simulated host is (HostConfig), what is wrong with it (Faults), what it saw (Counters)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_USER, DEFAULT_PASSWORD = "admin", "fleetclt-sim"


def version_tuple(version: str) -> tuple[int, ...]:
    """'25.10.1' -> (25, 10, 1); suffixes such as -BETA.1 are ignored."""
    return tuple(int(p) for p in version.split("-")[0].split(".") if p.isdigit())


@dataclass(frozen=True)
class HostConfig:
    """Identity, credentials and listening address of one simulated host.

    `api_keys` maps a full key string "<id>-<secret>" to its owner. With
    `loopback_secure=False` the host treats loopback clients as remote ones, so
    plain API keys over ws:// get revoked as they would from another machine.
    With `nginx=True` a TCP websocket that carries nothing either way for nginx's
    idle limit of that version is cut, as on a real host; off by default because
    tests run the clock fast while clients keep real-time keepalives.
    """

    name: str
    address: str = "127.0.0.1"
    port: int = 0
    version: str = "25.10.1"
    users: Mapping[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_PASSWORD})
    api_keys: Mapping[str, str] = field(default_factory=dict)
    certfile: str | None = None
    keyfile: str | None = None
    unix_path: str | None = None
    loopback_secure: bool = True
    nginx: bool = False  # model the nginx in front of a real host's TCP port: its idle close (server.py)

    def __repr__(self) -> str:
        return f"HostConfig(name={self.name!r}, address={self.address!r}, port={self.port}, version={self.version!r})"

    @property
    def version_info(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @property
    def legacy_only(self) -> bool:
        """24.10 and older have no /api/current, only the DDP /websocket."""
        return self.version_info < (25, 4)

    @property
    def new_style_jobs(self) -> bool:
        """legacy_jobs=false and message_ids exist from 25.10 on."""
        return self.version_info >= (25, 10)


@dataclass
class Faults:
    """Switches a test flips on a running host; all durations are simulated seconds."""

    latency: float = 0.0
    job_duration: float = 2.0
    job_failure: str | None = None           # None, "error" or "validation"
    fail_at_percent: int = 50
    transient_jobs: bool = False
    stall: bool = False                      # accept calls, never answer them
    stalled_methods: frozenset[str] = frozenset()  # ... or only these
    handshake_status: int | None = None      # e.g. 302, 307, 404 instead of 101
    close_on_connect: int | None = None      # e.g. 1008 (IP allowlist)
    not_ready: bool = False                  # system.ready answers false
    idle_timeout: float | None = None        # cut a connection that sent nothing for this long, as a proxy does


@dataclass
class Counters:
    """What the host observed; tests assert on these."""

    connections: int = 0
    bad_gateway: int = 0  # requests nginx answered 502 while middlewared was down
    logins_ok: int = 0
    logins_failed: int = 0
    rate_limited: int = 0
    calls: int = 0
    calls_by_method: Counter[str] = field(default_factory=Counter)  # every call the host saw, by name
    unauthenticated_calls: int = 0  # calls made before a login on their connection (logins included)
    peak_inflight: int = 0
    peak_running_calls: int = 0
    too_many_calls: int = 0
    jobs_started: int = 0
    peak_running_jobs: int = 0
