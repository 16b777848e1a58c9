"""What a simulated host is (HostConfig), what is wrong with it (Faults), what it saw (Counters)."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_USER, DEFAULT_PASSWORD = "admin", "fleetclt-sim"


_STAGE_RANK = {"BETA": 0, "RC": 1}
_PRERELEASE = re.compile(r"-(BETA|RC)\.(\d+)$")


def version_tuple(version: str) -> tuple[int, ...]:
    """'25.10.1' -> (25, 10, 1); suffixes such as -BETA.1 are ignored."""
    return tuple(int(p) for p in version.split("-")[0].split(".") if p.isdigit())


def release_tuple(version: str) -> tuple[int, ...]:
    """A key that orders pre-releases too: 26.0.0-BETA.2 < 26.0.0-BETA.3 < 26.0.0-RC.1 < 26.0.0."""
    numbers = (version_tuple(version) + (0, 0, 0))[:3]
    stage = _PRERELEASE.search(version)
    return numbers + ((_STAGE_RANK[stage[1]], int(stage[2])) if stage else (2, 0))


@dataclass(frozen=True)
class HostConfig:
    """Identity, credentials and listening address of one simulated host.

    `api_keys` maps a full key string "<id>-<secret>" to its owner. With
    `loopback_secure=False` the host treats loopback clients as remote ones, so
    plain API keys over ws:// get revoked as they would from another machine.
    `proxied_from` goes further: every TCP client looks as if it came through a
    proxy at that address with TLS ended before nginx (an SSH port forward, a
    container port mapping, a TLS-terminating proxy without X-Https), so the
    host sees that address, never TLS, for revocation, token origins and the
    rate limiter. `otp_secrets` maps a username to its base32 TOTP secret
    (two-factor login); `otp_window` is the server's accepted window of 30 s
    steps either side. `stig` is the host's STIG mode (assurance level 2,
    25.04 and later). `scram_iterations` is the PBKDF2 count of the SCRAM
    material the host keeps for each API key (26.0 and later).
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
    proxied_from: str | None = None
    otp_secrets: Mapping[str, str] = field(default_factory=dict)
    otp_window: int = 0  # system.twofactorauthentication `window` default
    stig: bool = False
    scram_iterations: int = 500_000  # utils/crypto.py generate_api_key_auth_data default

    def __repr__(self) -> str:
        return f"HostConfig(name={self.name!r}, address={self.address!r}, port={self.port}, version={self.version!r})"

    @property
    def version_info(self) -> tuple[int, ...]:
        return version_tuple(self.version)

    @property
    def release(self) -> tuple[int, ...]:
        return release_tuple(self.version)

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
    debug_size: int = 1024 * 1024            # bytes of the file system.debug writes


@dataclass
class Counters:
    """What the host observed; tests assert on these."""

    connections: int = 0
    bad_gateway: int = 0  # requests nginx answered 502 while middlewared was down
    logins_ok: int = 0
    logins_failed: int = 0
    logins_password: int = 0     # successful logins by mechanism (24.10's methods count as theirs) ...
    logins_api_key: int = 0
    logins_token: int = 0
    logins_two_factor: int = 0   # ... a password login completed by OTP_TOKEN counts here only
    logins_scram: int = 0
    rate_limited: int = 0
    calls: int = 0
    calls_by_method: Counter[str] = field(default_factory=Counter)  # every call the host saw, by name
    unauthenticated_calls: int = 0  # calls made before a login on their connection (logins included)
    peak_inflight: int = 0
    peak_running_calls: int = 0
    too_many_calls: int = 0
    jobs_started: int = 0
    peak_running_jobs: int = 0
