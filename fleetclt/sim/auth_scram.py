"""SCRAM-SHA-512 logins with API keys (26.0 and later), the server side.

From plugins/auth_/login_ex_impl.py `login_ex_scram`, utils/crypto.py
`generate_api_key_auth_data` and plugins/api_key.py `convert_raw_key`:
- the client-first message names `user:KEY_ID` (`n,,n=admin:7,r=...`);
- the key's material is PBKDF2-HMAC-SHA512 over the key's secret part (after
  `ID-`), with a 16-character salt and 500,000 iterations by default;
- the API key never crosses the wire, so SCRAM never revokes it, whatever the
  transport.
Channel binding (RFC 5929 `tls-server-end-point`, from 26.0.0-BETA.3,
utils/account/authenticator.py ScramPamAuthenticator): optional; a client
asking for it (`p=` gs2 flag) over a connection without TLS is refused, over
TLS it must bind the certificate the host serves. Before BETA.3 the server
offers none, and a client that demands it is refused.
"""
from __future__ import annotations

import functools
import hashlib
from typing import TYPE_CHECKING

from scramp import ScramException, ScramMechanism

from .config import release_tuple

if TYPE_CHECKING:
    from .host import SimHost

MECHANISM = ScramMechanism("SCRAM-SHA-512")
CHANNEL_BINDING_SINCE = release_tuple("26.0.0-BETA.3")
AuthInfo = tuple[bytes, bytes, bytes, int]  # salt, stored key, server key, iterations


class ScramRefused(Exception):
    """The exchange failed: login_ex answers AUTH_ERR."""


@functools.lru_cache(maxsize=1024)
def _auth_info(secret: str, salt: bytes, iterations: int) -> AuthInfo:
    """PBKDF2 costs real CPU time: derive each key's material once per process."""
    salt_out, stored_key, server_key, count = MECHANISM.make_auth_info(secret, iteration_count=iterations, salt=salt)
    return salt_out, stored_key, server_key, count


def key_salt(host_name: str, key_id: str) -> bytes:
    """A fixed 16-character salt per host and key, like the one the host stores with the key."""
    return hashlib.sha256(f"{host_name}:{key_id}".encode()).hexdigest()[:16].encode()


def _lookup(host: SimHost, principal: str) -> AuthInfo:
    """`user:KEY_ID` -> that key's material; refused for unknown users, keys or revoked keys."""
    username, _, key_id = principal.partition(":")
    for key, owner in host.config.api_keys.items():
        if key.split("-", 1)[0] == key_id and owner == username and key not in host.revoked_keys:
            return _auth_info(key.split("-", 1)[1], key_salt(host.name, key_id), host.config.scram_iterations)
    raise ScramRefused(f"{principal}: no such API key")


class ScramLogin:
    """One exchange on one connection: CLIENT_FIRST_MESSAGE, then CLIENT_FINAL_MESSAGE."""

    def __init__(self, host: SimHost, tls: bool) -> None:
        self.host, self.tls = host, tls
        self.principal = ""

    def first(self, client_first: str) -> str:
        """The server-first message for this client-first message."""
        binds = client_first.startswith("p=")
        if binds and not (self.tls and self.host.config.release >= CHANNEL_BINDING_SINCE):
            raise ScramRefused("channel binding is not permitted over a non-TLS transport")
        binding = None
        if binds and self.host.config.certfile:
            with open(self.host.config.certfile) as pem:
                binding = ("tls-server-end-point", pem.read())
        try:
            self.server = MECHANISM.make_server(self._auth_fn, channel_binding=binding)
            self.server.set_client_first(client_first)
            return str(self.server.get_server_first())
        except ScramException as exc:
            raise ScramRefused(str(exc)) from None

    def final(self, client_final: str) -> str:
        """The server-final message (`v=...`) once the client's proof checks out."""
        try:
            self.server.set_client_final(client_final)
            return str(self.server.get_server_final())
        except ScramException as exc:
            raise ScramRefused(str(exc)) from None

    @property
    def username(self) -> str:
        return self.principal.partition(":")[0]

    def _auth_fn(self, principal: str) -> AuthInfo:
        self.principal = principal
        return _lookup(self.host, principal)
