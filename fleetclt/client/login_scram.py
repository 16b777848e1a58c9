"""API key logins with SCRAM-SHA-512 (TrueNAS 26.0 and later), docs/protocol.md §5.

The key never crosses the wire, so the server never revokes it, whatever the
transport: a host that offers SCRAM takes the key over ws:// too. What a host
offers (`auth.mechanism_choices`, asked on the first connect that needs it) and
whether it takes channel binding are remembered per session (HostOffers), so
reconnects ask nothing again. The PBKDF2 behind the keys (500,000 iterations by
default, ~0.4 s) runs once per (key, salt, iterations) per process, off the
event loop, however many hosts and reconnects share the key (KeyCache).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gevent import get_hub
from gevent.event import AsyncResult

from ..errors import AuthError
from ..protocol.api_keys import PrecomputedKey
from ..protocol.endpoint import Endpoint
from ..protocol.scram import Challenge, ScramError, ScramExchange, ScramKeys, binding_data, derive_keys

__all__ = ["DERIVED", "HostOffers", "KeyCache", "ScramCall", "bound_or_not", "scram_exchange", "scram_principal"]

log = logging.getLogger(__name__)

ScramCall = Callable[[dict[str, Any]], Any]  # one auth.login_ex call, through the auth budget


@dataclass
class HostOffers:
    """What one host offers API keys, learned on a connect and kept for its session.

    `scram` None: not asked yet. `binds` None: no channel-bound exchange tried yet;
    False: the host refused one (26.0.0-BETA.2 has no channel binding). `tls_checked`:
    the session checks the server's certificate (CA or pin), so nobody in the middle can
    be the one refusing a bound exchange to get an unbound one relayed.
    """

    scram: bool | None = None
    binds: bool | None = None
    tls_checked: bool = True

    def may_use_scram(self, endpoint: Endpoint) -> bool:
        """Not known to be missing, and possible at all: never over the Unix socket (the server
        refuses it there) nor on the legacy /websocket dialect (hosts before 25.04)."""
        return self.scram is not False and not endpoint.unix_path and not endpoint.is_legacy


class KeyCache:
    """The three SCRAM keys per (key, salt, iterations), derived once per process.

    Concurrent logins with one key wait for the one derivation under way instead of
    starting their own; it runs in gevent's thread pool (hashlib releases the GIL), so
    other hosts' sessions go on meanwhile. Entries are found by a digest of the key,
    never the key itself.
    """

    def __init__(self) -> None:
        self._keys: dict[tuple[bytes, bytes, int], AsyncResult] = {}
        self.derivations = 0

    def __repr__(self) -> str:
        return f"<KeyCache {len(self._keys)} keys>"

    def keys(self, secret: str, challenge: Challenge) -> ScramKeys:
        ident = (hashlib.sha256(secret.encode()).digest(), challenge.salt, challenge.iterations)
        while (pending := self._keys.get(ident)) is not None:
            done: ScramKeys | None = pending.get()
            if done is not None:
                return done
            # that derivation failed or its greenlet was killed: the next waiter derives
        pending = self._keys[ident] = AsyncResult()
        self.derivations += 1
        try:
            keys: ScramKeys = get_hub().threadpool.apply(derive_keys, (secret, challenge.salt, challenge.iterations))
        except BaseException:  # waiters must not hang, nor a failure stay cached
            del self._keys[ident]
            pending.set(None)
            raise
        pending.set(keys)
        return keys


DERIVED = KeyCache()


def scram_principal(username: str | None, material: str | PrecomputedKey) -> str | None:
    """``user:KEY_ID`` for the client-first message; None when SCRAM cannot name the key
    (no owner known, or a raw key without a numeric ``ID-`` prefix)."""
    if isinstance(material, PrecomputedKey):
        username = username or material.username
        key_id = str(material.key_id)
    else:
        key_id = material.partition("-")[0]
    if not username or not key_id.isdigit():
        return None
    return f"{username}:{key_id}"


def scram_exchange(call: ScramCall, principal: str, material: str | PrecomputedKey,
                   certificate: bytes | None, cache: KeyCache = DERIVED) -> Any:
    """Both login_ex steps; the answer that ends the exchange.

    A server-final answer whose signature checks out becomes ``SUCCESS``; a wrong one
    raises ScramError (a server that does not know the key is no success). Any other
    answer (AUTH_ERR, REDIRECT, ...) is returned as it came, for the caller to judge.
    `certificate` (DER) binds the exchange to the TLS connection; None leaves it unbound.
    """
    exchange = ScramExchange(principal, None if certificate is None else binding_data(certificate))
    first = call(_step("CLIENT_FIRST_MESSAGE", exchange.client_first()))
    if not _is_scram(first, "SERVER_FIRST_RESPONSE"):
        return first
    challenge = exchange.read_server_first(first["rfc_str"])
    keys = material.keys if isinstance(material, PrecomputedKey) else cache.keys(material.partition("-")[2],
                                                                                   challenge)
    final = call(_step("CLIENT_FINAL_MESSAGE", exchange.client_final(keys)))
    if not _is_scram(final, "SERVER_FINAL_RESPONSE"):
        return final
    exchange.verify_server_final(final["rfc_str"])
    return {"response_type": "SUCCESS", "user_info": final.get("user_info")}


def bound_or_not(host: str, call: ScramCall, principal: str, material: str | PrecomputedKey,
                 certificate: bytes | None, offers: HostOffers) -> Any:
    """The exchange, bound to the TLS `certificate` unless the host is known to refuse binding.

    A host without channel binding (26.0.0-BETA.2) refuses a bound client-first
    message before any proof is sent: then once more unbound, and the session remembers;
    but only where the certificate is checked, or the refusal could be a downgrade.
    A ScramError (a malformed or unproven server answer) is an AuthError for `host`.
    """
    if offers.binds is False:
        certificate = None
    try:
        reply = scram_exchange(call, principal, material, certificate)
        if certificate is not None and offers.binds is None and _refused(reply):
            if not offers.tls_checked:
                raise AuthError("the host refused a channel-bound SCRAM login, and with its certificate "
                                "unchecked fleetclt does not retry unbound (whoever is in the middle could be "
                                "the one refusing): pin tls_fingerprint or check the certificate", host)
            offers.binds = False
            log.info("%s: the host refused a channel-bound SCRAM login; logging in without binding", host)
            return scram_exchange(call, principal, material, None)
    except ScramError as exc:
        raise AuthError(f"SCRAM login failed: {exc}", host) from None
    if certificate is not None and not _refused(reply):
        offers.binds = True
    return reply


def _refused(reply: Any) -> bool:
    return isinstance(reply, dict) and reply.get("response_type") == "AUTH_ERR"


def _step(scram_type: str, rfc_str: str) -> dict[str, Any]:
    return {"mechanism": "SCRAM", "scram_type": scram_type, "rfc_str": rfc_str}


def _is_scram(reply: Any, scram_type: str) -> bool:
    return (isinstance(reply, dict) and reply.get("response_type") == "SCRAM_RESPONSE"
            and reply.get("scram_type") == scram_type and isinstance(reply.get("rfc_str"), str))
