"""The rollout's live progress on a real pseudo-terminal 80 columns wide, replayed on a small terminal model.

The rollout runs as a subprocess whose stderr is a pty slave sized with TIOCSWINSZ
(no $COLUMNS), against simulated hosts; what it wrote is fed to `Screen`, which
wraps at the last column as xterm does and follows the two sequences the view uses.
"""
from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import struct
import sys
import termios

import gevent
import gevent.os
import orjson
import pytest
from gevent import subprocess

from fleetclt.sim import Faults
from tests.cli.rollout_helpers import served

WIDTH = 80
ESCAPES = re.compile(r"\033\[[FK]")


class Screen:
    """Rows of text as a terminal shows them: deferred wrap at the last column, CSI F (up one row,
    to column 0) and CSI K (erase to the end of the row)."""

    def __init__(self, width: int) -> None:
        self.width, self.rows, self.row, self.col = width, [[]], 0, 0

    def feed(self, text: str) -> None:
        index = 0
        while index < len(text):
            if text.startswith("\033[F", index):
                self.row, self.col = max(self.row - 1, 0), 0
                index += 3
                continue
            if text.startswith("\033[K", index):
                del self.rows[self.row][self.col:]
                index += 3
                continue
            self._char(text[index])
            index += 1

    def _char(self, char: str) -> None:
        if char == "\r":
            self.col = 0
        elif char == "\n":
            self._down()
        else:
            if self.col == self.width:
                self._down()
            cells = self.rows[self.row]
            cells.extend(" " * (self.col + 1 - len(cells)))
            cells[self.col] = char
            self.col += 1

    def _down(self) -> None:
        self.row, self.col = self.row + 1, 0
        if self.row == len(self.rows):
            self.rows.append([])

    def text(self) -> list[str]:
        return ["".join(cells).rstrip() for cells in self.rows if "".join(cells).strip()]


def test_screen_model_wraps_at_the_last_column():
    screen = Screen(4)
    screen.feed("abcdefg\n12\n\033[F\033[Kx")
    assert screen.text() == ["abcd", "efg", "x"]


@pytest.fixture
def sim(tmp_path):
    with served(tmp_path, 20, "127.10.3.1", faults=Faults(job_duration=50)) as fleet:
        yield fleet


def read_all(fd: int, sink: list[bytes]) -> None:
    """Everything the child writes to the pty, until its last copy of the slave is closed."""
    gevent.os.make_nonblocking(fd)
    while True:
        try:
            chunk = gevent.os.nb_read(fd, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if not chunk:
            return
        sink.append(chunk)


def test_progress_fits_80_columns_and_the_redraw_leaves_no_stale_rows(sim, tmp_path):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, WIDTH, 0, 0))
    env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES")}
    env.update(ROLL_PW="pw", FLEETCLT_STATE_DIR=str(tmp_path / "state"))
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "-i", str(sim.inventory_path), "rollout",
                                "--hosts", "all", "--batch", "1,20%,100%", "update.update", "{}"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    reader = gevent.spawn(read_all, master, chunks)
    try:
        with gevent.Timeout(60):
            out, _ = process.communicate()
            reader.join()
    finally:
        os.close(master)
    assert process.returncode == 0 and orjson.loads(out)["summary"] == {"ok": 20}
    written = b"".join(chunks).decode()
    assert "\033[F\033[K" in written, "the block was redrawn in place"
    lines = ESCAPES.sub("", written).replace("\r\n", "\n").split("\n")
    assert lines[0].startswith("rollout ") and " journal " in lines[0]
    lines = lines[1:]  # the journal's path is printed whole, to be copied; it comes before any redraw
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    screen = Screen(WIDTH)
    screen.feed(written)
    rows = screen.text()
    block_rows = [row for row in rows if "waiting," in row or row.startswith("jobs: mean")]
    assert block_rows == rows[-len(block_rows):], "a row of an earlier block was left on the screen"
    assert block_rows == ["stage 3/3: 0 waiting, 0 running, 15 done, 0 failed",
                          "overall: 0 waiting, 0 running, 20 done, 0 failed"]
