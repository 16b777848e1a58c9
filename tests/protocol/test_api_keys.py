"""API key files in the formats midclt reads (truenas_api_client/auth_api_key.py, get_key_material):
a raw key, JSON or INI with `raw_key`; precomputed SCRAM material alone is refused with the reason."""
from __future__ import annotations

import pytest

from fleetclt.errors import ConfigError
from fleetclt.protocol.api_keys import key_in

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
])
def test_precomputed_material_alone_says_it_needs_scram(text):
    with pytest.raises(ConfigError, match="precomputed SCRAM material .* does not support SCRAM yet"):
        key_in(text)


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
