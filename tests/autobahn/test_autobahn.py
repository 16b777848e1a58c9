"""WebSocket conformance: every Autobahn client case of sections 1-7 and 10, 0 failures.

Needs pyenv's python2.7 and PyPI (first run only, about a minute to install into
.autobahn/); skips with the reason when either is missing. The full run takes
about 8 s here, so the default suite runs all 247 cases, not a subset.
"""
from __future__ import annotations

import pytest

from tests.autobahn import harness


def test_fleetclt_transport_passes_autobahn(tmp_path):
    try:
        score = harness.run(work=tmp_path / "autobahn")
    except harness.Unavailable as exc:
        pytest.skip(f"Autobahn conformance not run: {exc}")
    print(f"\nautobahn: {score.summary()}")
    assert score.cases == 247
    assert not score.failed, f"failed cases: {score.failed}"
    assert score.behaviors["OK"] + score.behaviors["INFORMATIONAL"] + score.behaviors["NON-STRICT"] == 247
