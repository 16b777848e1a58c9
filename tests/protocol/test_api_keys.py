"""API key files in the formats midclt reads (truenas_api_client/auth_api_key.py, get_key_material):
a raw key, JSON or INI with `raw_key`, or the precomputed SCRAM material plugins/api_key.py
`convert_raw_key` answers (base64 keys, `api_key_id`), here with an optional `username`."""
from __future__ import annotations

import pytest

from fleetclt.errors import ConfigError
from fleetclt.protocol.api_keys import PrecomputedKey, key_in
from fleetclt.protocol.scram import ScramKeys

RAW = "1-uz8DhKHFhRIUQIvjzabPYtpy5wf1DJ3ZBLlDgNVhRAFT7Y6pJGUlm0n3apwxWEU4"
PRECOMPUTED = {"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": 1}


@pytest.mark.parametrize("text", [
    RAW, f"  {RAW}\n",
    f'{{"raw_key": "{RAW}", "api_key_id": 1}}\n',
    f"[TRUENAS_API_KEY]\nraw_key = {RAW}\napi_key_id = 1\n",
    f"[other]\nraw_key = {RAW}\n",
    f"[other]\nraw_key = x\n[TRUENAS_API_KEY]\nraw_key: {RAW}\n",
    f"raw_key = {RAW}\n",
])
def test_each_format_gives_the_raw_key(text):
    assert key_in(text) == RAW


def test_text_in_no_known_format_is_the_key_itself():
    assert key_in("9-key-with-dashes") == "9-key-with-dashes"


@pytest.mark.parametrize("text", [
    '{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": 1}',
    "[TRUENAS_API_KEY]\n" + "".join(f"{name} = {value}\n" for name, value in PRECOMPUTED.items()),
    '{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": 1, '
    '"salt": "c2FsdA==", "iterations": 500000}',
])
def test_precomputed_material_is_scram_only_key_material(text):
    material = key_in(text)
    assert isinstance(material, PrecomputedKey) and material.key_id == 1 and material.username is None
    assert material.keys == ScramKeys(b"client", b"stored", b"server")
    assert "Y2xpZW50" not in repr(material) and "client" not in repr(material.keys)


def test_precomputed_material_may_name_the_key_owner():
    material = key_in('{"username": "backup", "api_key_id": 3, "client_key": "Y2xpZW50", '
                      '"stored_key": "c3RvcmVk", "server_key": "c2VydmVy"}')
    assert isinstance(material, PrecomputedKey) and (material.username, material.key_id) == ("backup", 3)


@pytest.mark.parametrize(("text", "reason"), [
    ('{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "api_key_id": 1}', "without server_key"),
    ('{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy"}', "without api_key_id"),
    ('{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": "x"}',
     "api_key_id .* not a positive integer"),
    ('{"client_key": "secretXYZ!", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": 1}',
     "client_key .* not base64"),
    ('{"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy", "api_key_id": 1, '
     '"username": ""}', "username .* not a non-empty string"),
])
def test_broken_precomputed_material_says_what_is_missing_without_quoting_it(text, reason):
    with pytest.raises(ConfigError, match=reason) as failure:
        key_in(text)
    assert "secretXYZ" not in str(failure.value) and "Y2xpZW50" not in str(failure.value)


@pytest.mark.parametrize(("text", "reason"), [
    ('{"raw_key": "1-abc"', "nor valid JSON"),
    ('["1-abc"]', "must be an object"),
    ('{"raw_key": 7}', "not a non-empty string"),
    ('{"api_key_id": 1}', "has no raw_key"),
    ("[a]\nraw_key = 1-abc\n[b]\nraw_key = 1-abc\n", r"needs one named \[TRUENAS_API_KEY\]"),
    ("[TRUENAS_API_KEY]\nraw_key = 1-secretXYZ\nraw_key = 1-secretXYZ\n", "nor valid INI"),
])
def test_broken_files_say_what_is_wrong_without_quoting_the_key(text, reason):
    with pytest.raises(ConfigError, match=reason) as failure:
        key_in(text)
    assert "secretXYZ" not in str(failure.value) and "1-abc" not in str(failure.value)
