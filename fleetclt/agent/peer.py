"""Same user only: the uid at the other end of a Unix socket, and whether the agent serves it.

The socket file is 0600 in a 0700 directory, which already keeps other users
out; the kernel's peer credentials (SO_PEERCRED) are checked on every connection
as well, so a socket that ended up somewhere readable still serves nobody else.
"""
from __future__ import annotations

import socket
import struct

_UCRED = struct.Struct("3i")  # pid, uid, gid


def peer_uid(sock: socket.socket) -> int:
    """The uid of the process that connected, as the kernel recorded it at connect time."""
    _pid, uid, _gid = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
    return int(uid)


def refusal(peer: int, own: int) -> str | None:
    """Why a peer is refused (another user), or None when it is served."""
    if peer == own:
        return None
    return f"this agent serves uid {own} only; uid {peer} is refused"
