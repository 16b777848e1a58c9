"""The client side of a SCRAM login (RFC 5802; SHA-512 as RFC 7677 does SHA-256), sans I/O.

TrueNAS 26.0 logs API keys in with SCRAM-SHA-512 in two `auth.login_ex` calls
(docs/protocol.md §5): the client-first message names ``user:KEY_ID``, the
password is the key's secret part, and the server's PBKDF2 count is 500,000.

Why the RFC 5802 math is written here and not left to scramp (used for the
simulator's server side and as the independent check in the tests): scramp's
client takes only a password and runs PBKDF2 inside every exchange, so it can
neither reuse keys derived once for a (key, salt, iterations) nor log in from
the precomputed ``client_key``/``stored_key``/``server_key`` material an API key
file may hold instead of the key. Both need the exchange to start from the three
keys, which is a handful of HMACs. scramp's SASLprep prepares names and keys; the
channel-binding value of a certificate is hashed here, with asn1crypto (scramp's own
dependency) naming the certificate's signature hash (RFC 5929 §4.1).

Nothing here logs or formats a key, a proof or a signature: errors say what was
wrong, never with which bytes. scramp (and the asn1crypto it loads) is imported
only by a login that uses it: ~30 ms every command start would pay otherwise.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from ..errors import ProtocolError

__all__ = ["Challenge", "ScramError", "ScramExchange", "ScramKeys", "binding_data", "derive_keys"]

HASH = "sha512"
BINDING_TYPE = "tls-server-end-point"
# RFC 7677 asks for at least 4,096; the official client refuses more than 5,000,000, so a
# server cannot make a login spend minutes of CPU.
MIN_ITERATIONS, MAX_ITERATIONS = 4096, 5_000_000


class ScramError(ProtocolError):
    """The server's side of the exchange is malformed, refuses, or does not prove the key."""


@dataclass(frozen=True, repr=False)
class ScramKeys:
    """ClientKey, StoredKey and ServerKey (RFC 5802 §3): all the exchange needs, and as secret
    as the key itself (they log in without it)."""

    client_key: bytes
    stored_key: bytes
    server_key: bytes

    def __repr__(self) -> str:
        return "<ScramKeys>"


def derive_keys(secret: str, salt: bytes, iterations: int, hash_name: str = HASH) -> ScramKeys:
    """SaltedPassword = Hi(secret), then the three keys: the slow part (PBKDF2), done once per
    (secret, salt, iterations) by whoever caches it."""
    salted = hashlib.pbkdf2_hmac(hash_name, _prepared(secret, "API key").encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    return ScramKeys(client_key, hashlib.new(hash_name, client_key).digest(),
                     hmac.digest(salted, b"Server Key", hash_name))


def binding_data(certificate_der: bytes) -> bytes:
    """The tls-server-end-point value of the server's certificate (RFC 5929 §4.1): its DER hashed
    with the hash of its own signature algorithm, SHA-256 for MD5 and SHA-1. asn1crypto's public
    API reads the algorithm (scramp 1.5 has the same code, but not as public API)."""
    from asn1crypto.x509 import Certificate
    try:
        algorithm = Certificate.load(certificate_der, strict=True).hash_algo
    except ValueError:
        raise ScramError("cannot bind SCRAM to the server's certificate: no signature hash found in it") from None
    return hashlib.new("sha256" if algorithm in ("md5", "sha1") else algorithm, certificate_der).digest()


@dataclass(frozen=True)
class Challenge:
    """What the server-first message asks of the client's keys."""

    salt: bytes
    iterations: int


class ScramExchange:
    """One exchange: client-first, the server's challenge, client-final, the server's proof.

    `principal` is ``user:KEY_ID``; `binding` the channel-binding value of the TLS
    connection (`binding_data`), None for an unbound exchange (``n,,``).
    """

    def __init__(self, principal: str, binding: bytes | None = None, *, nonce: str | None = None,
                 hash_name: str = HASH) -> None:
        name = _prepared(principal, "user name").replace("=", "=3D").replace(",", "=2C")
        self._gs2 = f"p={BINDING_TYPE},," if binding is not None else "n,,"
        self._binding = binding or b""
        self._nonce = nonce or base64.b64encode(secrets.token_bytes(24)).decode()
        self._first_bare = f"n={name},r={self._nonce}"
        self._hash = hash_name
        self._server_first = ""
        self._combined_nonce = ""
        self._server_signature: bytes | None = None

    def __repr__(self) -> str:
        return f"<ScramExchange {'bound' if self._binding else 'unbound'}>"

    def client_first(self) -> str:
        return self._gs2 + self._first_bare

    def read_server_first(self, message: str) -> Challenge:
        """The salt and iteration count; ScramError unless the server's nonce extends ours."""
        fields = _fields(message, "server-first")
        nonce, salt, count = fields.get("r", ""), fields.get("s"), fields.get("i", "")
        if not nonce.startswith(self._nonce) or len(nonce) == len(self._nonce):
            raise ScramError("the server-first message does not extend the client's nonce")
        if salt is None or not count.isdigit():
            raise ScramError("the server-first message lacks a salt or an iteration count")
        iterations = int(count)
        if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
            raise ScramError(f"the server asks for {iterations} PBKDF2 iterations, outside "
                             f"{MIN_ITERATIONS}-{MAX_ITERATIONS}")
        challenge = Challenge(_b64(salt, "salt"), iterations)
        self._server_first, self._combined_nonce = message, nonce
        return challenge

    def client_final(self, keys: ScramKeys) -> str:
        """The client-final message, with the proof that we hold the keys."""
        if not self._server_first:
            raise ScramError("client-final before the server-first message")
        size = hashlib.new(self._hash).digest_size
        if {len(keys.client_key), len(keys.stored_key), len(keys.server_key)} != {size}:
            raise ScramError(f"the SCRAM keys are not {self._hash.upper()} keys ({size} bytes each)")
        channel = base64.b64encode(self._gs2.encode() + self._binding).decode()
        without_proof = f"c={channel},r={self._combined_nonce}"
        auth_message = f"{self._first_bare},{self._server_first},{without_proof}".encode()
        signature = hmac.digest(keys.stored_key, auth_message, self._hash)
        proof = bytes(a ^ b for a, b in zip(keys.client_key, signature, strict=True))
        self._server_signature = hmac.digest(keys.server_key, auth_message, self._hash)
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify_server_final(self, message: str) -> None:
        """ScramError unless the server proved that it holds the key too (`v=`)."""
        fields = _fields(message, "server-final")
        if "e" in fields:
            raise ScramError(f"the server ended the exchange: {fields['e']}")
        expected = self._server_signature
        if expected is None or "v" not in fields:
            raise ScramError("the server-final message carries no server signature")
        if not hmac.compare_digest(_b64(fields["v"], "server signature"), expected):
            raise ScramError("the server's signature is wrong: it does not know this API key")


def _prepared(text: str, what: str) -> str:
    """SASLprep (RFC 4013), which RFC 5802 asks of names and passwords."""
    from scramp.utils import ScramException, saslprep
    try:
        return str(saslprep(text))
    except ScramException:
        raise ScramError(f"the {what} has characters SCRAM does not allow (RFC 4013)") from None


def _fields(message: str, what: str) -> dict[str, str]:
    """`a=b,c=d` attributes; base64 values keep their own `=` padding."""
    fields: dict[str, str] = {}
    for part in message.split(","):
        name, sep, value = part.partition("=")
        if not sep or len(name) != 1:
            raise ScramError(f"malformed SCRAM {what} message")
        fields.setdefault(name, value)
    return fields


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ScramError(f"the SCRAM {what} is not base64") from None
