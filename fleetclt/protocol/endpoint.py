"""Where a host's API lives and which certificate it must show: parsed one way for every caller.

The client connects to an Endpoint, the inventory builds and checks one, the
CLI reads one from the command line; a TLS pin is written the same way in
all three places (hex, any case, colons allowed, an optional `sha256:` prefix).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

DEFAULT_PORTS = {"ws": 80, "wss": 443}
API_PATH = "/api/current"       # JSON-RPC 2.0 (docs/protocol.md §1)
LEGACY_PATH = "/websocket"      # the DDP dialect of 24.10 and older
UNIX_HANDSHAKE_HOST, UNIX_HANDSHAKE_PATH = "localhost", API_PATH  # what midclt sends over the local socket

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_API_VERSION = re.compile(r"v?(\d+(?:\.\d+)+)")


@dataclass(frozen=True)
class Endpoint:
    """Where to connect and what to ask for in the upgrade request."""

    scheme: str
    host: str
    port: int
    target: str
    unix_path: str | None = None

    @classmethod
    def parse(cls, uri: str) -> Endpoint:
        """ws://, wss:// or ws+unix://PATH; a BadEndpoint says what is wrong, in our words, not urllib's."""
        try:
            parts = urlsplit(uri)
        except ValueError:  # urllib's only complaint here is an unbalanced IPv6 bracket
            raise BadEndpoint(uri, "an IPv6 address needs both brackets, as in wss://[::1]:443") from None
        if parts.scheme == "ws+unix":
            return cls("ws", UNIX_HANDSHAKE_HOST, 0, UNIX_HANDSHAKE_PATH, unix_path=parts.netloc + parts.path)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise BadEndpoint(uri, "not a websocket uri (use ws://HOST[:PORT], wss://... or ws+unix://PATH)")
        port = _port(uri, parts.netloc) or DEFAULT_PORTS[parts.scheme]
        query = f"?{parts.query}" if parts.query else ""  # kept: a proxy or test server may route on it
        return cls(parts.scheme, parts.hostname, port, (parts.path or "/") + query)

    def with_path(self, path: str) -> Endpoint:
        return Endpoint(self.scheme, self.host, self.port, path, self.unix_path)

    @property
    def netloc(self) -> str:
        """host[:port] as the Host header and a URI write it (IPv6 in brackets, default port left out)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS.get(self.scheme) or self.unix_path else f"{host}:{self.port}"

    @property
    def uri(self) -> str:
        if self.unix_path:
            return f"ws+unix://{self.unix_path}"
        return f"{self.scheme}://{self.netloc}{self.target}"

    @property
    def is_versioned(self) -> bool:
        """A pinned API version such as /api/v25.04.2 (docs/protocol.md §1)."""
        return self.target.startswith("/api/v")

    @property
    def is_legacy(self) -> bool:
        """The DDP endpoint of TrueNAS 24.10 and older, rather than JSON-RPC."""
        return self.target.endswith(LEGACY_PATH)


class BadEndpoint(ValueError):
    """A uri that names no websocket endpoint; `reason` is the problem without the uri."""

    def __init__(self, uri: str, reason: str) -> None:
        super().__init__(f"{uri!r}: {reason}")
        self.uri, self.reason = uri, reason


def _port(uri: str, netloc: str) -> int | None:
    """The explicit port of `netloc`, None if it has none; 0 and numbers past 65535 are refused."""
    hostport = netloc.rpartition("@")[2]
    _, colon, text = hostport[hostport.rfind("]") + 1:].rpartition(":")
    if not colon or not text:
        return None
    if not (text.isascii() and text.isdigit()):
        raise BadEndpoint(uri, f"the port {text!r} is not a number")
    if not 1 <= int(text) <= 65535:
        raise BadEndpoint(uri, f"the port {int(text)} is out of range (1-65535)")
    return int(text)


def api_path(api_version: str) -> str | None:
    """The path of an API version: 'current' -> /api/current, '25.04.2' or 'v25.04.2' -> /api/v25.04.2.

    None when `api_version` is neither (docs/protocol.md §1).
    """
    if api_version == "current":
        return API_PATH
    found = _API_VERSION.fullmatch(api_version)
    return f"/api/v{found.group(1)}" if found else None


def normalize_fingerprint(text: str) -> str | None:
    """A SHA-256 certificate pin as 64 lowercase hex digits; None if `text` is not one."""
    digest = re.sub(r"[\s:]", "", text.strip().lower().removeprefix("sha256:"))
    return digest if _SHA256_HEX.fullmatch(digest) else None
