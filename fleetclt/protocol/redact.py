"""Masking credentials in wire frames, errors and output before anyone sees them.

`--debug` logs every frame; a login frame carries the password or API key in
clear, and `certificate.create` a private key. Values are masked by meaning, not
by searching text: by the field names TrueNAS itself declares secret
(``secret_fields``, collected from the middleware's models), by the shape of a
credential's name for fields no model lists, and by structure for names that are
secret only as part of a credential record (docs/protocol.md §15). Every
positional argument of the login methods that take secrets positionally is
masked too. One secret travels inside a string: the `auth_token=` of a download
URL (core.download's answer), masked wherever it appears. One comes back bare:
auth.generate_token answers the token itself, a string no name marks, so the
id of every call to it is noted as the call is logged, and the reply with that
id is logged with its result masked (ids are unique per process: jsonrpc.py
IdSource). A call's own result is shown as asked, except a two-factor
`provisioning_uri` (an otpauth:// URI holding the TOTP secret, in `auth.me`'s
answer): nobody asking who they are asked for it (``mask_unasked``).
"""
from __future__ import annotations

import re
from typing import Any

from . import ejson
from .secret_fields import ALSO_PLAIN_FIELDS, SECRET_FIELDS

__all__ = ["CONTEXT_FIELDS", "CREDENTIAL_FIELDS", "IDENTITY_FIELDS", "MASK", "UNASKED_FIELDS", "is_credential_name",
           "mask_tokens", "mask_unasked", "redact", "redact_frame"]

MASK = "********"
# Names that say "credential" whatever model they come from: passwords, passphrases,
# secrets, tokens, private and API keys, password hashes; this also covers names no
# model lists (`reconnect_token`, `ansible_password`, `ansible_ssh_pass`, a TOTP `provisioning_uri`). Not
# `public_key`, `key_id`, `password_disabled` (a bool: only strings and structures are masked).
_CREDENTIAL_NAME = re.compile(r"pass(word|wd|phrase)|secret|(^|_)(pass|pw|token)$|bindpw|^key$"
                              r"|priv(ate)?_?key|(api|auth|service|dhchap|ctrl)_key$|(unix|smb|key)hash$|^provisioning_uri$")


def is_credential_name(name: str) -> bool:
    """True for a field whose value is a credential wherever it appears."""
    name = name.lower()
    return name in CREDENTIAL_FIELDS or bool(_CREDENTIAL_NAME.search(name))


# Secret in every model that has them, or named like a credential: masked anywhere.
CREDENTIAL_FIELDS = frozenset(name.lower() for name in SECRET_FIELDS
                              if name not in ALSO_PLAIN_FIELDS or _CREDENTIAL_NAME.search(name.lower()))
# Secret only as part of a credential record (an SFTP credential's `host`, `port`,
# `user`): masked where a credential sits beside them, shown elsewhere (a call's `result`).
# Who logs in is not a secret and is what a debug log is read for: always shown.
IDENTITY_FIELDS = frozenset({"username", "user"})
CONTEXT_FIELDS = frozenset(name.lower() for name in SECRET_FIELDS) - CREDENTIAL_FIELDS - IDENTITY_FIELDS
POSITIONAL_SECRETS = frozenset({"auth.login", "auth.login_with_api_key", "auth.login_with_token",
                                "auth.login_ex", "auth.login_ex_continue"})
_URL_TOKEN = re.compile(r"(auth_token=)[^&#\s\"']+")
_SCRAM_PROOF = re.compile(r"(,p=)[^,]*")
SECRET_RESULTS = frozenset({"auth.generate_token"})  # methods that answer a bare credential
_secret_replies: set[Any] = set()                     # ids of such calls logged, whose reply is not yet


# Credentials inside results that were asked for something else: masked in output too.
UNASKED_FIELDS = frozenset({"provisioning_uri"})


def mask_unasked(value: Any) -> Any:
    """A copy of a call's result with the fields of UNASKED_FIELDS masked, at any depth."""
    if isinstance(value, dict):
        return {key: MASK if key in UNASKED_FIELDS and _maskable(item) else mask_unasked(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_unasked(item) for item in value]
    return value


def mask_tokens(text: str) -> str:
    """`text` with the value of every `auth_token=` masked (docs/protocol.md §16)."""
    return _URL_TOKEN.sub(rf"\g<1>{MASK}", text)


def _maskable(value: Any) -> bool:
    """Strings and structures can hold a credential; booleans, numbers (ids, ports) and null cannot."""
    return isinstance(value, (str, bytes, dict, list))


def redact(value: Any) -> Any:
    """A copy of `value` with every credential masked, at any depth."""
    if isinstance(value, dict):
        names = {key: key.lower() if isinstance(key, str) else "" for key in value}
        record = any(is_credential_name(name) and _maskable(value[key]) for key, name in names.items())
        return {key: MASK if _maskable(item) and (is_credential_name(names[key])
                                                  or (record and names[key] in CONTEXT_FIELDS))
                else redact(item)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item) for item in value]
    if isinstance(value, str) and "auth_token=" in value:
        return mask_tokens(value)
    return value


def redact_frame(text: str | bytes) -> str:
    """A frame fit for a log line: secret fields and login arguments masked."""
    try:
        message = ejson.loads(text)
    except ejson.DecodeError:
        return f"<{len(text)} characters, not JSON>"
    if isinstance(message, dict) and message.get("method") in POSITIONAL_SECRETS:
        params = message.get("params")
        if isinstance(params, list):
            message = {**message, "params": [_scram_proof_masked(p) if isinstance(p, dict) else MASK for p in params]}
    if isinstance(message, dict):
        message = _secret_result_masked(message)
    return ejson.dumps(redact(message))


def _scram_proof_masked(data: dict[str, Any]) -> dict[str, Any]:
    """A SCRAM client-final message shows all but its proof (`,p=`): the user, key id and
    nonces are what a debug log is read for (docs/protocol.md §5)."""
    text = data.get("rfc_str")
    if data.get("mechanism") != "SCRAM" or not isinstance(text, str):
        return data
    return {**data, "rfc_str": _SCRAM_PROOF.sub(rf"\g<1>{MASK}", text)}


def _secret_result_masked(message: dict[str, Any]) -> dict[str, Any]:
    """Note a call that will be answered with a bare credential; mask the result of its answer."""
    ident = message.get("id")
    if not isinstance(ident, (str, int)):
        return message
    if message.get("method") in SECRET_RESULTS:
        _secret_replies.add(ident)
    elif ("result" in message or "error" in message) and ident in _secret_replies:
        _secret_replies.discard(ident)
        if "result" in message:
            return {**message, "result": MASK}
    return message
