"""TLS policy: verification on by default, a CA file, or a pinned SHA-256 fingerprint.

TrueNAS ships a self-signed certificate valid only for `localhost`, so pinning
its SHA-256 fingerprint is the practical secure option. Contexts are cached and
shared: building one with CA loading is expensive enough that doing it per
connection would dominate a fleet's connect (docs/performance.md §4).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass

import gevent
from gevent import socket, ssl

from ..errors import ConfigError, PinMismatch, TLSError
from ..protocol.endpoint import normalize_fingerprint


@dataclass(frozen=True)
class TLSPolicy:
    """How to trust a server. `verify=False` is explicit and only ever chosen by the user."""

    verify: bool = True
    ca_file: str | None = None
    fingerprint: str | None = None   # SHA-256 of the DER certificate; stored as 64 lowercase hex digits

    def __post_init__(self) -> None:
        if self.fingerprint is not None:
            digest = normalize_fingerprint(self.fingerprint)
            if digest is None:
                raise ConfigError(f"tls fingerprint {self.fingerprint!r} is not a SHA-256 fingerprint "
                                  "(64 hex digits, colons and a sha256: prefix allowed)")
            object.__setattr__(self, "fingerprint", digest)

    def context(self) -> ssl.SSLContext:
        return _context(self.verify and not self.fingerprint, self.ca_file)


@functools.cache
def _context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # gevent's class: cooperative handshakes
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs()
    return context


def fingerprint_of(der: bytes) -> str:
    """The lowercase hex SHA-256 of a DER certificate, as inventories pin it."""
    return hashlib.sha256(der).hexdigest()


def server_fingerprint(host: str, port: int, timeout: float = 10.0) -> str:
    """Fetch a server's certificate without trusting it and return its SHA-256 fingerprint.

    Trust on first use made explicit: the caller shows it to a human, who pins it.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with gevent.Timeout(timeout, TLSError(f"no TLS handshake within {timeout:g} s", where)):
            raw = socket.create_connection((host, port))
            with _context(False, None).wrap_socket(raw, server_hostname=host) as conn:
                der = conn.getpeercert(binary_form=True)
    except ssl.SSLError as exc:
        raise TLSError(f"cannot read the certificate: TLS handshake failed: {exc.reason or exc}; "
                       "is the port plain ws:// rather than wss://?", where) from None
    except OSError as exc:
        reason = "connection refused" if isinstance(exc, ConnectionRefusedError) else exc.strerror or str(exc)
        raise TLSError(f"cannot read the certificate: {reason}", where) from None
    if not der:
        raise TLSError("the server sent no certificate", host)
    return fingerprint_of(der)


def check_pin(host_name: str, der: bytes | None, expected: str | None) -> None:
    """Refuse the connection unless the certificate matches the pin (before any credential)."""
    if not expected:
        return
    if not der:
        raise TLSError("server sent no certificate to check against the pin", host_name)
    actual = fingerprint_of(der)
    if not hmac.compare_digest(actual, expected):
        raise PinMismatch(f"certificate fingerprint sha256:{actual} does not match the pinned "
                          f"sha256:{expected}", host_name)
