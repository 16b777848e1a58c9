"""What an API key file holds, in the formats the official client (midclt) reads.

A key is a raw ``ID-SECRET`` string, alone or inside a JSON object or an INI
section (``[TRUENAS_API_KEY]``, the only section, or none) as ``raw_key``. The
same formats may instead hold material precomputed for SCRAM (``client_key``,
``stored_key``, ``server_key`` in base64, ``api_key_id``, and optionally
``username``), as `api_key.convert_raw_key` answers it: that logs in with SCRAM
only, never as a plain key, since it does not contain the key (docs/protocol.md
§5). Errors never quote the text: it is a secret, and the parsers' own messages
would.
"""
from __future__ import annotations

import base64
import binascii
import configparser
import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import ConfigError
from .scram import ScramKeys

__all__ = ["PrecomputedKey", "api_key_material"]

INI_SECTION = "TRUENAS_API_KEY"
_PRECOMPUTED = ("client_key", "stored_key", "server_key")
_FIELDS = ("raw_key", "api_key_id", "username") + _PRECOMPUTED
_INI_LINE = re.compile(rf"^\s*(\[[^\]\n]*\]|(?:{'|'.join(_FIELDS)})\s*[=:])", re.MULTILINE)


class KeySource(Protocol):
    """A secret holding an API key (fleetclt.secret.Secret): read at login time."""

    def reveal(self) -> str: ...
    def error(self, message: str) -> ConfigError: ...


@dataclass(frozen=True, repr=False)
class PrecomputedKey:
    """SCRAM material for one API key, without the key: it can log in with SCRAM only."""

    key_id: int
    keys: ScramKeys
    username: str | None = None

    def __repr__(self) -> str:
        return f"<PrecomputedKey {self.key_id}>"


def api_key_material(key: KeySource) -> str | PrecomputedKey:
    """The raw key, or the SCRAM material that stands for it; a ConfigError naming where the key
    was written when it holds neither."""
    text = key.reveal()  # an unset variable or unreadable file raises its own error, naming where
    try:
        return key_in(text)
    except ConfigError as exc:
        raise key.error(str(exc)) from None


def key_in(text: str) -> str | PrecomputedKey:
    """The raw key of a JSON or INI key file's text, its precomputed SCRAM material, else the
    text itself (stripped).

    ConfigError when the text is JSON or INI with neither a usable ``raw_key`` nor all the
    precomputed fields.
    """
    text = text.strip()
    if not text.startswith("{") and not _INI_LINE.search(text):
        return text
    try:
        data = json.loads(text)
    except ValueError:
        if text.startswith("{"):
            raise ConfigError("the API key is neither a raw key (ID-SECRET) nor valid JSON") from None
        return _raw_key(_ini_fields(text), "INI")
    return _raw_key(_json_object(data), "JSON")


def _json_object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError("an API key in JSON must be an object with raw_key")
    return data


def _ini_fields(text: str) -> dict[str, Any]:
    """midclt's choice of section: TRUENAS_API_KEY, else the only one, else keys before any."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text if text.lstrip().startswith("[") else f"[{INI_SECTION}]\n{text}")
    except configparser.Error:
        raise ConfigError("the API key is neither a raw key (ID-SECRET) nor valid INI") from None
    sections = parser.sections()
    if INI_SECTION in sections:
        return dict(parser[INI_SECTION])
    if len(sections) == 1:
        return dict(parser[sections[0]])
    raise ConfigError(f"an API key file with several INI sections needs one named [{INI_SECTION}]")


def _raw_key(fields: dict[str, Any], form: str) -> str | PrecomputedKey:
    raw = fields.get("raw_key")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if "raw_key" in fields:
        raise ConfigError(f"raw_key in the {form} API key is not a non-empty string")
    if any(name in fields for name in _PRECOMPUTED):
        return _precomputed(fields, form)
    raise ConfigError(f"the {form} API key has no raw_key")


def _precomputed(fields: dict[str, Any], form: str) -> PrecomputedKey:
    """client_key, stored_key and server_key (all three: the server's proof is checked) and the key's id."""
    missing = [name for name in _PRECOMPUTED + ("api_key_id",) if name not in fields]
    if missing:
        raise ConfigError(f"the {form} API key holds precomputed SCRAM material without {', '.join(missing)}")
    key_id = fields["api_key_id"]
    if isinstance(key_id, str) and key_id.strip().isdigit():
        key_id = int(key_id)
    if not isinstance(key_id, int) or isinstance(key_id, bool) or key_id <= 0:
        raise ConfigError(f"api_key_id in the {form} API key is not a positive integer")
    username = fields.get("username")
    if username is not None and not (isinstance(username, str) and username.strip()):
        raise ConfigError(f"username in the {form} API key is not a non-empty string")
    keys = ScramKeys(*(_base64(fields[name], name, form) for name in _PRECOMPUTED))
    return PrecomputedKey(key_id, keys, username.strip() if username else None)


def _base64(value: Any, name: str, form: str) -> bytes:
    try:
        decoded = base64.b64decode(value, validate=True) if isinstance(value, str) else b""
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise ConfigError(f"{name} in the {form} API key is not base64")
    return decoded
