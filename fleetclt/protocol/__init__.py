"""Sans-IO: the TrueNAS wire protocol as text in, events out.

JSON-RPC 2.0 (`jsonrpc`), the legacy DDP dialect (`ddp`), job bookkeeping
(`jobs`), TrueNAS extended JSON (`ejson`), secret masking (`redact`), URIs and
TLS pins (`endpoint`), the websocket upgrade (`handshake`) and frames
(`frames`). Nothing here touches a socket, a clock or gevent, so every module
is tested by feeding it bytes and strings; the import contract in setup.cfg
keeps it that way.
"""
