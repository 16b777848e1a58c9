"""Same user only: the peer check alone, and a real agent socket with this uid and with another one."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import gevent
import gevent.os
import orjson
import pytest
from gevent import subprocess

from fleetclt import __version__
from fleetclt.agent import wire
from fleetclt.agent.fleets import AgentFleet
from fleetclt.agent.peer import peer_uid, refusal
from fleetclt.agent.server import Agent
from fleetclt.local.state import agent_files

NOBODY = 65534
ASK_STATUS = """
import socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.connect(sys.argv[1])
sock.sendall(sys.argv[2].encode())
print(sock.makefile().readline(), end="")
"""


def test_the_same_uid_is_served_and_any_other_refused():
    assert refusal(1000, 1000) is None
    assert refusal(0, 1000) == "this agent serves uid 1000 only; uid 0 is refused"
    assert refusal(1001, 1000) is not None


def test_peer_uid_is_the_kernels_record_of_the_connecting_process():
    left, right = socket.socketpair(socket.AF_UNIX)
    with left, right:
        assert peer_uid(left) == os.getuid()


@pytest.fixture
def open_agent(tmp_path):
    """A real Agent whose socket sits, for this test only, where another user can reach it."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  nas01:\n    uri: ws://127.27.0.1:1\n    password: x\n")
    folder = Path(tempfile.mkdtemp(prefix="fleetclt-open-"))  # pytest's own tmp dirs are closed to others
    os.chmod(folder, 0o777)
    path = folder / "agent.sock"
    listener = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o777)
    listener.listen(8)
    agent = Agent(AgentFleet(str(inventory)), agent_files(str(inventory)), 600, listener)
    serving = gevent.spawn(agent.serve)
    yield path
    agent.stop()
    serving.get(timeout=10)
    shutil.rmtree(folder)


def ask_status(path, user=None):
    request = wire.encode(wire.Request(wire.STATUS, version=__version__).to_message()).decode()
    out = subprocess.run([sys.executable, "-c", ASK_STATUS, str(path), request], capture_output=True,
                         text=True, timeout=30, user=user, env={"PATH": os.environ.get("PATH", "")}, cwd="/")
    assert out.returncode == 0, out.stderr
    return orjson.loads(out.stdout)


def test_a_real_connection_of_this_user_is_served(open_agent):
    reply = ask_status(open_agent)
    assert reply["kind"] == wire.STATE and reply["pid"] == os.getpid()


def ask_status_as(path, uid):
    """The status request from a forked child that became `uid` (plain blocking sockets there, no gevent)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: become another user, connect, report the reply, exit without cleanup
        try:
            os.setuid(uid)
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(str(path))
            with contextlib.suppress(BrokenPipeError):  # the refusal may come before the request is read
                sock.sendall(wire.encode(wire.Request(wire.STATUS, version=__version__).to_message()))
            os.write(write_end, sock.makefile("rb").readline())
        except OSError as exc:
            os.write(write_end, orjson.dumps({"child": str(exc)}))
        finally:
            os._exit(0)
    os.close(write_end)
    os.set_blocking(read_end, False)
    reply = b""
    with gevent.Timeout(30):
        while chunk := _read_when_ready(read_end):
            reply += chunk
    os.close(read_end)
    with contextlib.suppress(ChildProcessError):  # gevent's child watcher may have reaped it already
        gevent.os.waitpid(pid, 0)
    return orjson.loads(reply)


def _read_when_ready(fd):
    gevent.socket.wait_read(fd)
    return os.read(fd, 65536)


@pytest.mark.skipif(os.getuid() != 0, reason="connecting as another uid needs root")
def test_a_real_connection_of_another_user_is_refused(open_agent):
    reply = ask_status_as(open_agent, NOBODY)
    assert reply == wire.error(f"this agent serves uid 0 only; uid {NOBODY} is refused", wire.REFUSED)
