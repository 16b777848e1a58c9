"""Two-factor logins from the CLI (one host, and fleet mode): a real `fleetclt` subprocess against simulated hosts.

Modelled on plugins/auth.py (TS-24.10.2 `auth.login(username, password, otp_token)`; TS-25.10.1
`login_ex` answering OTP_REQUIRED, continued by `login_ex_continue`) and plugins/account_/2fa.py
(pyotp TOTP, 30 s steps, 6 digits). Hosts that check a code the test computes stop their clock
(ManualClock), so the code the test reads off it is still the host's when the CLI sends it.
"""
from __future__ import annotations

import fcntl
import os
import pty
import sys
import termios

import gevent
import gevent.os
import orjson
import pyotp
import pytest
from gevent import subprocess

from fleetclt.cli.main import main
from fleetclt.client.login_otp import NO_CODE
from fleetclt.protocol.redact import MASK
from fleetclt.sim import ManualClock, SimClock
from tests.cli.test_rollout_pty import read_all
from tests.cli.test_sim import free_port
from tests.helpers import start_sim, stop_sim

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
PASSWORD = "Pw-otp-3b7d"
RUN_TIMEOUT = 30


@pytest.fixture
def otp_host(make_host):
    def make(version="25.10.1", clock=None):
        return make_host("nas01", clock=clock or ManualClock(speed=1000), version=version,
                         users={"admin": PASSWORD}, otp_secrets={"admin": SECRET})
    return make


@pytest.fixture
def cli(tmp_path):
    """fleetclt in its own session (no controlling terminal), the password in $OTP_PW."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCLT_")}
    base.update(FLEETCLT_STATE_DIR=str(tmp_path / "state"), OTP_PW=PASSWORD)

    def run(uri, *args, env=None):
        argv = [sys.executable, "-m", "fleetclt.cli", "--uri", uri, "-U", "admin", "--password-env", "OTP_PW", *args]
        return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              env={**base, **(env or {})}, start_new_session=True, timeout=RUN_TIMEOUT)
    return run


def legacy_uri(host):
    return f"ws://{host.address}:{host.port}/websocket"


@pytest.mark.parametrize("version", ["24.10.2", "25.10.1", "26.0.0-BETA.3"])
def test_otp_code_logs_in(otp_host, cli, version):
    host = otp_host(version)
    code = pyotp.TOTP(SECRET).at(host.clock.wall())
    done = cli(legacy_uri(host) if version < "25" else host.uri, "--otp-code", code, "call", "auth.me")
    assert done.returncode == 0, done.stderr
    assert '"pw_name": "admin"' in done.stdout and host.counters.logins_ok == 1


def test_otp_secret_env_logs_in_with_computed_codes(make_host, cli):
    """A real-time host: the CLI computes the code from its own clock, as against a real server."""
    host = make_host("nas01", clock=SimClock(speed=1), users={"admin": PASSWORD}, otp_secrets={"admin": SECRET})
    done = cli(host.uri, "--otp-secret-env", "OTP_SECRET", "--debug", "call", "auth.me",
               env={"OTP_SECRET": SECRET.lower()})
    assert done.returncode == 0, done.stderr
    assert host.counters.logins_two_factor == 1
    assert SECRET not in done.stdout + done.stderr and SECRET.lower() not in done.stdout + done.stderr
    assert "otpauth://" not in done.stdout + done.stderr, "auth.me's provisioning_uri is masked"


def test_without_a_code_or_a_terminal_the_login_fails_saying_what_to_give(otp_host, cli):
    host = otp_host()
    done = cli(host.uri, "ping")
    assert done.returncode == 1 and done.stderr == f"AuthError: {NO_CODE}\n"
    assert host.counters.calls_by_method["auth.login_ex_continue"] == 0


def _controlling_terminal():
    """In the child: its stdin (a pty slave) becomes its controlling terminal, as a login shell's is."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_a_terminal_is_asked_for_the_code_when_the_server_wants_one(otp_host, tmp_path):
    """A person types a wrong code, is asked again (25.10 keeps the prompt open), then types the right one."""
    host = otp_host()
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCLT_")}
    env.update(FLEETCLT_STATE_DIR=str(tmp_path / "state"), OTP_PW=PASSWORD)
    process = subprocess.Popen([sys.executable, "-m", "fleetclt.cli", "--uri", host.uri, "-U", "admin",
                                "--password-env", "OTP_PW", "ping"],
                               stdin=slave, stdout=subprocess.PIPE, stderr=slave, env=env,
                               preexec_fn=_controlling_terminal)
    os.close(slave)
    chunks: list[bytes] = []
    reader = gevent.spawn(read_all, master, chunks)
    try:
        with gevent.Timeout(RUN_TIMEOUT):
            for code in ("000000", pyotp.TOTP(SECRET).at(host.clock.wall())):
                while b"".join(chunks).count(b"Two-factor code for") < (2 if code != "000000" else 1):
                    gevent.sleep(0.02)
                os.write(master, code.encode() + b"\n")
            out, _ = process.communicate()
            reader.join()
    finally:
        os.close(master)
    shown = b"".join(chunks).decode(errors="replace")
    assert process.returncode == 0 and out.strip() == b"pong", shown
    assert shown.count(f"Two-factor code for {host.address}: ") == 2
    assert "000000" not in shown, "the code is not echoed"
    assert host.counters.calls_by_method["auth.login_ex_continue"] == 2


BAD = [
    (["-U", "admin", "-P", "pw", "--otp-code", "12ab56"], "--otp-code expects the 6 to 8 digits"),
    (["-K", "1-abc", "--otp-code", "123456"], "--otp-code applies to password logins (-U USER); an API key is"),
    (["--otp-secret-file", "x"], "--otp-secret-file applies to password logins (-U USER)"),
    (["-U", "admin", "-P", "pw", "--otp-secret-env", "OTP_NOT_BASE32"],
     "--otp-secret-env: the TOTP secret is not base32 (letters A-Z and digits 2-7) (env:OTP_NOT_BASE32)"),
    (["-U", "admin", "-P", "pw", "--otp-secret-env", "OTP_UNSET"],
     "--otp-secret-env: environment variable OTP_UNSET is not set"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_two_factor_options_are_one_line_without_the_value(capsys, monkeypatch, argv, message):
    monkeypatch.setenv("OTP_NOT_BASE32", "not-base32-1890")
    monkeypatch.delenv("OTP_UNSET", raising=False)
    code = main(["--uri", "ws://127.0.0.1:1", *argv, "ping"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("fleetclt: warning")]
    assert code == 1 and len(lines) == 1 and message in lines[0], err
    assert "12ab56" not in err and "not-base32-1890" not in err


def test_fleet_mode_refuses_single_host_two_factor_flags(capsys, tmp_path, monkeypatch):
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n  nas01: {uri: 'ws://127.0.0.1:1/api/current', username: a, password: p}\n")
    monkeypatch.setenv("FLEETCLT_INVENTORY", str(inventory))
    code = main(["call", "--hosts", "all", "--otp-code", "123456", "core.ping"])
    assert code == 1 and "--otp-code does not apply: in fleet mode" in capsys.readouterr().err


def test_fleet_mode_logs_in_to_sim_hosts_of_an_inventory_with_otp_secret(tmp_path):
    """`fleetclt sim -i` gives each host the inventory's otp_secret; `call --hosts` then computes the
    codes from that same reference, on 24.10 and 25.10 alike (the sim runs on the real clock)."""
    port = free_port("127.3.9.1")
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(f"""
defaults: {{username: admin, password: {{env: OTP_FLEET_PW}}, otp_secret: {{env: OTP_FLEET_SECRET}}}}
hosts:
  new1: {{uri: "ws://127.3.9.1:{port}/api/current"}}
  old1: {{uri: "ws://127.3.9.2:{port}/websocket"}}
""")
    env = {"OTP_FLEET_PW": PASSWORD, "OTP_FLEET_SECRET": SECRET}
    process, ready = start_sim("-i", str(inventory), env=env)
    try:
        done = subprocess.run([sys.executable, "-m", "fleetclt.cli", "-i", str(inventory), "call", "--hosts", "all",
                               "--no-agent", "-o", "json", "auth.me"], capture_output=True, text=True,
                              env={**os.environ, **env, "FLEETCLT_STATE_DIR": str(tmp_path / "state")},
                              timeout=RUN_TIMEOUT)
    finally:
        stop_sim(process)
    assert "2 hosts" in ready and done.returncode == 0, done.stderr
    rows = orjson.loads(done.stdout)["hosts"]
    assert {name: row["status"] for name, row in rows.items()} == {"new1": "ok", "old1": "ok"}
    assert rows["new1"]["result"]["two_factor_config"]["provisioning_uri"] == MASK
