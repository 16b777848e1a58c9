"""Version strings and the method-name table: which name a host of each version wants."""
from __future__ import annotations

import pytest

from fleetclt.protocol.endpoint import Endpoint, api_path
from fleetclt.protocol.versions import is_renamed, method_for, nginx_closes_idle, parse_version


@pytest.mark.parametrize(("text", "version"), [
    ("25.10.1", (25, 10, 1)),
    ("TrueNAS-25.10.1", (25, 10, 1)),
    ("TrueNAS-SCALE-24.10.2", (24, 10, 2)),   # 24.10's system.version and system.info.version
    ("26.0.0-BETA.2", (26, 0, 0)),
    ("v25.04.2", (25, 4, 2)),
    ("25.04.2.6", (25, 4, 2, 6)),
])
def test_every_version_string_the_server_sends_is_read(text, version):
    assert parse_version(text) == version


def test_text_without_a_version_is_none():
    assert parse_version("TrueNAS") is None


@pytest.mark.parametrize(("method", "params", "version", "sent"), [
    ("update.update", [{}], (24, 10, 2), "update.update"),
    ("update.update", [{}], (25, 4, 2), "update.update"),
    ("update.update", [{}], (25, 10, 1), "update.run"),
    ("update.update", [{"reboot": True}], (26, 0, 0), "update.run"),
    ("update.update", [], (25, 10, 0), "update.run"),
    ("update.run", [{"reboot": False}], (24, 10, 2), "update.update"),
    ("update.run", [{}], (25, 4, 2), "update.update"),
    ("update.run", [{}], (25, 10, 1), "update.run"),
    # from 25.10 update.update is also the update configuration: a call naming its fields means that
    ("update.update", [{"autocheck": False}], (25, 10, 1), "update.update"),
    ("update.update", [{"profile": "GENERAL"}], (26, 0, 0), "update.update"),
    ("system.info", [], (24, 10, 2), "system.info"),
])
def test_method_for_each_version(method, params, version, sent):
    assert method_for(method, params, version) == sent


def test_only_names_in_the_table_need_the_version():
    assert is_renamed("update.update") and is_renamed("update.run")
    assert not is_renamed("service.restart") and not is_renamed("system.info")


@pytest.mark.parametrize(("setting", "path"), [
    ("current", "/api/current"), ("v25.04.2", "/api/v25.04.2"), ("25.04.2", "/api/v25.04.2"),
    ("v24.10", "/api/v24.10"), ("latest", None), ("v25", None), ("/api/v25.04.2", None),
])
def test_api_version_settings_become_paths(setting, path):
    assert api_path(setting) == path


def test_a_versioned_endpoint_is_recognised():
    assert Endpoint.parse("wss://nas/api/v25.04.2").is_versioned
    assert not Endpoint.parse("wss://nas/api/current").is_versioned


@pytest.mark.parametrize("version, closes", [
    ("24.10.2", True), ("TrueNAS-SCALE-24.10.2", True), ("25.04.2.6", True), ("25.10.6", True),
    ("26.0.0-BETA.1", True), ("26.0.0-BETA.2", False), ("26.0.0-RC.1", False), ("26.0.0", False),
    ("26.04.0", False), ("27.0.0-BETA.1", False), ("not a version", True),
])
def test_nginx_closes_idle_websockets_before_26_0_beta_2(version: str, closes: bool) -> None:
    """nginx.conf.mako sets proxy_read_timeout 3600 from 26.0-BETA.2; before it nginx's 60 s default holds."""
    assert nginx_closes_idle(version) is closes
