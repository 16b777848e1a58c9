"""What an API key file holds, in the formats the official client (midclt) reads.

A key is a raw ``ID-SECRET`` string, alone or inside a JSON object or an INI
section (``[TRUENAS_API_KEY]``, the only section, or none) as ``raw_key``. The
same formats may instead hold material precomputed for SCRAM (``client_key``,
``stored_key``, ``server_key``, ``api_key_id``): that never yields the key
itself, so it is refused here with the reason (docs/protocol.md §5). Errors
never quote the text: it is a secret, and the parsers' own messages would.
"""
from __future__ import annotations

import configparser
import json
import re
from typing import Any, Protocol

from ..errors import ConfigError

__all__ = ["plain_api_key"]

INI_SECTION = "TRUENAS_API_KEY"
_PRECOMPUTED = ("client_key", "stored_key", "server_key")
_FIELDS = ("raw_key", "api_key_id") + _PRECOMPUTED
_INI_LINE = re.compile(rf"^\s*(\[[^\]\n]*\]|(?:{'|'.join(_FIELDS)})\s*[=:])", re.MULTILINE)


class KeySource(Protocol):
    """A secret holding an API key (fleetclt.secret.Secret): read at login time."""

    def reveal(self) -> str: ...
    def error(self, message: str) -> ConfigError: ...


def plain_api_key(key: KeySource) -> str:
    """The key to send; a ConfigError naming where the key was written when it has none."""
    text = key.reveal()  # an unset variable or unreadable file raises its own error, naming where
    try:
        return key_in(text)
    except ConfigError as exc:
        raise key.error(str(exc)) from None


def key_in(text: str) -> str:
    """The raw key of a JSON or INI key file's text, else the text itself (stripped).

    ConfigError when the text is JSON or INI without a usable ``raw_key``.
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


def _raw_key(fields: dict[str, Any], form: str) -> str:
    raw = fields.get("raw_key")
    if isinstance(raw, str) and raw.strip():
        return raw.strip()
    if "raw_key" in fields:
        raise ConfigError(f"raw_key in the {form} API key is not a non-empty string")
    if any(name in fields for name in _PRECOMPUTED):
        raise ConfigError(f"the {form} API key holds only precomputed SCRAM material (client_key, "
                          "stored_key, server_key), which needs a SCRAM login; fleetclt does not "
                          "support SCRAM yet: give the raw key (raw_key) instead")
    raise ConfigError(f"the {form} API key has no raw_key")
