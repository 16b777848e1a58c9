"""What one HostSession costs in memory: a fleet holds thousands of them (docs/performance.md §1)."""
from __future__ import annotations

import sys

from fleetclt.client.session import Credentials, HostSession

# CPython (3.11, 3.12) shares one key table between the instance dicts of a class while an
# instance has fewer than 30 attributes; the 30th gives every session a dict of its own, 1,584
# bytes instead of 296 (1.3 KiB per session, 13 MiB per 10,000 hosts). Measured: bench RSS per
# session went from 24.0 to 27.2 KiB when HostSession reached 30.
SHARED_KEYS_LIMIT = 29


def test_a_session_keeps_its_attributes_under_the_shared_key_limit():
    session = HostSession("nas01", "ws://127.0.0.1:1/api/current", Credentials("admin", "pw"),
                          controllers=["ws://127.0.0.2:1/api/current"])
    assert len(vars(session)) <= SHARED_KEYS_LIMIT, sorted(vars(session))
    if sys.implementation.name == "cpython" and sys.version_info[:2] in ((3, 11), (3, 12)):
        assert sys.getsizeof(vars(session)) < 1024
