"""Names vulture cannot see used: read by a framework, by a server's signature, or by pytest.

Passed to vulture by scripts/check; every line says who uses the name.
"""
_ = object()
_.track_greenlet_tree  # gevent.config setting, read by gevent (fleetclt/cli/main.py)
otp_token  # auth.login's parameter, part of the simulated method's signature (fleetclt/sim/api_core.py)
_.raw_read  # gevent-websocket's WebSocket attributes, replaced on our subclass (fleetclt/sim/server.py)
_.raw_write
_.validate
_.mask_payload
_.unmask_payload
_.Utf8Validator
_.run_websocket  # gevent-websocket handler hooks, called by the library (fleetclt/sim/server.py)
_.log_request
_.reader  # the reader task, kept referenced so asyncio does not collect it (bench/worker_asyncio.py)
stub_dns  # a fixture taken for its side effect (tests/faults/test_fault_matrix.py)
_.mtime  # tarfile.TarInfo field, read by tarfile (fleetclt/sim/api_files.py)
