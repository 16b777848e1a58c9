"""The single-host CLI as a user runs it: a real `fleetclt` subprocess against a simulated host.

The hosts run in the test process; the CLI runs as `python -m fleetclt.cli` in its own
session (no controlling terminal, so a prompt can never hang a test) with its own auth
throttle state directory.
"""
from __future__ import annotations

import errno
import os
import signal
import sys
from dataclasses import dataclass

import gevent
import orjson
import pytest
from gevent import subprocess

from fleetclt.client.session import Credentials, HostSession
from fleetclt.secret import Secret
from fleetclt.sim import Faults, SimClock
from fleetclt.sim.api_domain import UPDATE_STEPS
from fleetclt.sim.failures import CallError

PASSWORD = "Pw-7c1f2e9a-unique"   # distinctive, so a leak anywhere is found by substring search
API_KEY = "3-abc4f00dfeed"
RUN_TIMEOUT = 20
PLAIN_KEY = "--allow-plain-api-key"   # the simulator sees these loopback clients as they are
PLAIN_KEY_WARNING = (
    "fleetclt: warning: the API key goes unencrypted over ws:// (--allow-plain-api-key) to host 127.0.0.1 unless the "
    "host offers SCRAM (TrueNAS 26.0 and later), which never sends it: the "
    "server revokes it for good unless it sees a loopback client; an SSH port forward, a container port mapping "
    "or a TLS-terminating proxy without X-Https in front of it does not count\n")


@dataclass
class Run:
    code: int
    out: str
    err: str
    argv: list[str]


@pytest.fixture
def nas(make_host):
    return make_host("nas01", users={"admin": PASSWORD}, api_keys={API_KEY: "admin"})


@pytest.fixture
def cli(tmp_path):
    """Run fleetclt with a clean environment: no inherited secrets, a private state dir."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCLT_")}
    base["FLEETCLT_STATE_DIR"] = str(tmp_path / "state")

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Run:
        argv = [sys.executable, "-m", "fleetclt.cli", *args]
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env={**base, **(env or {})},
                                   start_new_session=True)
        out, err = process.communicate(stdin or "", timeout=RUN_TIMEOUT)
        return Run(process.returncode, out, err, argv)
    return run


def as_admin(nas, *args: str) -> list[str]:
    """Global options for a password login whose secret comes from the environment."""
    return ["--uri", nas.uri, "-U", "admin", *args]


PW_ENV = {"FLEETCLT_PASSWORD": PASSWORD}


# -- call: arguments and output -----------------------------------------------------------
def test_json_args_are_parsed_and_objects_printed_as_json(cli, nas):
    run = cli(*as_admin(nas), "call", "user.query", '[["username", "=", "admin"]]', '{"get": true}', env=PW_ENV)
    assert run.code == 0, run.err
    user = orjson.loads(run.out)
    assert user["username"] == "admin"
    assert run.out.startswith('{\n  "')  # indented, in the server's key order
    assert list(user) == list(nas.data.users[0])


def test_string_args_stay_strings(cli, nas):
    run = cli(*as_admin(nas), "call", "-j", "service.control", "RESTART", "ssh", env=PW_ENV)
    assert (run.code, run.out) == (0, "true\n"), run.err
    assert nas.data.services["ssh"] == "RUNNING"


def test_a_non_json_arg_reaches_the_server_as_a_string(cli, nas):
    run = cli(*as_admin(nas), "call", "user.get_instance", "nobody", env=PW_ENV)
    assert run.code == 1
    assert "id: Input should be a valid integer" in run.err


def test_a_dash_is_one_argument_read_from_stdin_as_midclt_reads_it(cli, nas):
    """truenas_api_client main(): every `-` yields stdin's text, JSON when it parses."""
    new_user = '{"username": "alice", "full_name": "Alice", "password": "s3cret-alice"}'
    run = cli(*as_admin(nas), "call", "user.create", "-", stdin=new_user, env=PW_ENV)
    assert run.code == 0, run.err
    assert orjson.loads(run.out)["username"] == "alice"
    assert [u["full_name"] for u in nas.data.users if u["username"] == "alice"] == ["Alice"]


def test_a_dash_anywhere_and_stdin_that_is_not_json(cli, nas):
    run = cli(*as_admin(nas), "call", "-j", "pool.dataset.lock", "-", '{"force_umount": true}',
              stdin="tank/secure", env=PW_ENV)
    assert (run.code, run.out) == (0, "true\n"), run.err
    assert nas.data.dataset("tank/secure")["locked"]


def test_args_json_passes_several_arguments(cli, nas):
    args = '[[["username", "=", "admin"]], {"select": ["username", "uid"], "get": true}]'
    piped = cli(*as_admin(nas), "call", "user.query", "--args-json", "-", stdin=args, env=PW_ENV)
    given = cli(*as_admin(nas), "call", "user.query", "--args-json", args, env=PW_ENV)
    for run in (piped, given):
        assert run.code == 0, run.err
        assert orjson.loads(run.out) == {"username": "admin", "uid": nas.data.users[0]["uid"]}


def test_args_json_must_be_an_array(cli, nas):
    run = cli(*as_admin(nas), "call", "user.query", "--args-json", "-", stdin='{"get": true}', env=PW_ENV)
    assert run.code == 1
    assert "JSON array" in run.err and nas.counters.connections == 0


def test_scalars_print_raw_and_dates_as_iso(cli, nas):
    version = cli(*as_admin(nas), "call", "system.version", env=PW_ENV)
    count = cli(*as_admin(nas), "call", "user.query", "[]", '{"count": true}', env=PW_ENV)
    info = cli(*as_admin(nas), "call", "system.info", env=PW_ENV)
    assert version.out == "TrueNAS-25.10.1\n"  # no quotes
    assert count.out == f"{len(nas.data.users)}\n"
    assert orjson.loads(info.out)["buildtime"] == "2025-10-09T08:53:20+00:00"


# -- call: jobs -----------------------------------------------------------------------------
def test_job_progress_descriptions_on_stderr_result_on_stdout(cli, make_host):
    nas = make_host("slow", users={"admin": PASSWORD}, clock=SimClock(speed=100),
                    faults=Faults(job_duration=50))  # 0.5 s real, 10 steps
    run = cli(*as_admin(nas), "call", "-j", "-jp", "description", "update.update", "{}", env=PW_ENV)
    assert (run.code, run.out) == (0, "true\n"), run.err
    lines = run.err.splitlines()
    assert len(lines) >= 2 and set(lines) <= set(UPDATE_STEPS)
    assert lines == sorted(lines, key=UPDATE_STEPS.index)  # in order, each once


def test_failed_job_exits_1_with_errname(cli, nas):
    nas.faults.job_failure = "error"
    run = cli(*as_admin(nas), "call", "-j", "service.control", "RESTART", "ssh", env=PW_ENV)
    assert (run.code, run.out) == (1, "")
    assert run.err.splitlines() == ["EIO: Simulated failure of service.control"]


def test_validation_error_lists_each_attribute(cli, nas):
    run = cli(*as_admin(nas), "call", "user.create", '{"username": "admin"}', env=PW_ENV)
    assert run.code == 1
    assert run.err.splitlines() == [
        "EINVAL: validation failed",
        "user_create.full_name: Field required",
        "user_create.password: Password is required if `password_disabled` is false",
        'user_create.username: The username "admin" already exists.',
    ]


def test_unknown_method(cli, nas):
    run = cli(*as_admin(nas), "call", "no.such.method", env=PW_ENV)
    assert (run.code, run.err) == (1, "METHOD_NOT_FOUND: Method does not exist\n")


def test_not_a_job_fails_instead_of_hanging(cli, nas):
    run = cli(*as_admin(nas), "call", "-j", "system.version", env=PW_ENV)
    assert run.code == 1 and run.err.startswith("NotAJobError: system.version is not a job")


# -- login, ping, reachability ------------------------------------------------------------
def test_failed_login_exits_1(cli, nas):
    run = cli(*as_admin(nas), "call", "system.version", env={"FLEETCLT_PASSWORD": "wrong-pw-31337"})
    assert (run.code, run.out) == (1, "")
    assert run.err == "AuthError: login failed: username or secret refused\n"
    assert nas.counters.logins_failed == 1


def test_ping_logs_in(cli, nas):
    run = cli(*as_admin(nas), "ping", env=PW_ENV)
    assert (run.code, run.out) == (0, "pong\n"), run.err
    assert nas.counters.logins_ok == 1


def test_unreachable_host_exits_1(cli, nas):
    uri = nas.uri
    nas.stop()
    run = cli("--uri", uri, "-U", "admin", "ping", env=PW_ENV)
    assert run.code == 1 and run.err.startswith("ConnectError: ")


def test_connection_options_after_the_command(cli, nas):
    run = cli("call", "--uri", nas.uri, "-U", "admin", "system.version", env=PW_ENV)
    assert run.code == 0 and run.out.strip() and nas.counters.logins_ok == 1


# -- subscribe --------------------------------------------------------------------------------
def like_a_foreground_job() -> None:
    """Give the child the default SIGINT action a terminal's foreground command has.

    A shell's background job (CI may run the suite as one) ignores SIGINT, every
    child inherits that, and Python then never installs its KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_subscriber(nas, state_dir, *args: str):
    """A `subscribe` process, returned once it is subscribed (it says so at --debug)."""
    argv = [sys.executable, "-m", "fleetclt.cli", "--debug", *as_admin(nas), "subscribe", *args]
    env = {**os.environ, **PW_ENV, "FLEETCLT_STATE_DIR": str(state_dir)}
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                               text=True, env=env, start_new_session=True, preexec_fn=like_a_foreground_job)
    with gevent.Timeout(RUN_TIMEOUT):
        while f"subscribed to {args[0]}" not in process.stderr.readline():
            assert process.poll() is None, process.stderr.read()
    return process


def test_subscribe_prints_n_events_as_json_lines(nas, tmp_path):
    process = start_subscriber(nas, tmp_path, "core.get_jobs", "-n", "2")
    try:
        with HostSession("test", nas.uri, Credentials("admin", Secret(PASSWORD))) as session:
            assert session.call("service.control", "RESTART", "nfs", job=True) is True
        out = process.communicate(timeout=RUN_TIMEOUT)[0]
    finally:
        process.kill()
    events = [orjson.loads(line) for line in out.splitlines()]
    assert process.returncode == 0 and len(events) == 2
    assert events[0]["msg"] == "added" and events[0]["fields"]["method"] == "service.control"
    assert {e["collection"] for e in events} == {"core.get_jobs"} and events[0]["id"] == events[1]["id"]


def test_ctrl_c_exits_130_without_a_traceback(nas, tmp_path):
    process = start_subscriber(nas, tmp_path, "pool.query")
    try:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        process.kill()
    assert (process.returncode, out) == (130, "")
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


# A signal taken by another thread while the main one waits in epoll_wait for a pipe
# nobody writes to (no timer pending): Python only sets a flag, so without a wake-up
# the loop would wait on until the test's timeout.
SIGNAL_IN_ANOTHER_THREAD = """
import os, signal, threading
from gevent.socket import wait_read
from fleetclt.cli.main import handle_interrupts
handle_interrupts()
main = threading.get_native_id()

def main_waits_in_the_loop():
    with open(f"/proc/self/task/{main}/wchan") as wchan:
        return "epoll" in wchan.read()

def interrupt_from_this_thread():
    while not main_waits_in_the_loop():
        pass
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=interrupt_from_this_thread, daemon=True).start()
silent, _ = os.pipe()
try:
    wait_read(silent)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_signal_wakes_the_loop_even_when_another_thread_takes_it():
    done = subprocess.run([sys.executable, "-c", SIGNAL_IN_ANOTHER_THREAD], capture_output=True, text=True,
                          timeout=RUN_TIMEOUT, preexec_fn=like_a_foreground_job)
    assert (done.returncode, done.stdout, done.stderr) == (0, "interrupted\n", "")


def test_subscribe_times_out_with_exit_1(cli, nas):
    run = cli(*as_admin(nas), "subscribe", "pool.query", "-n", "1", "-t", "0.2", env=PW_ENV)
    assert (run.code, run.out) == (1, "")
    assert run.err.startswith("Timeout: 0 of 1 events")


def test_subscribe_exits_1_with_the_error_when_the_server_ends_the_subscription(nas, tmp_path):
    """As midclt subscribe does: the notify_unsubscribed error, exit 1, without waiting for -t."""
    name = 'filesystem.file_tail_follow:{"path": "/var/log/middlewared.log", "tail_lines": 1}'
    process = start_subscriber(nas, tmp_path, name, "-t", "60")
    try:
        first = process.stdout.readline()
        nas.sources.end(name, CallError("source failed", errno.EIO))
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    finally:
        process.kill()
    assert orjson.loads(first)["fields"] == {"data": "ready\n"} and out == ""
    assert process.returncode == 1 and "EIO: source failed" in err


def test_subscribe_exits_0_when_the_source_ends_cleanly(cli, nas):
    name = 'filesystem.file_tail_follow:{"path": "/var/log/none.log"}'
    run = cli(*as_admin(nas), "subscribe", name, "-t", "60", env=PW_ENV)
    assert (run.code, run.out) == (0, "")


def test_a_refused_subscription_exits_1_at_once(cli, nas):
    nas.data.users[0]["roles"] = ["READONLY_ADMIN"]
    run = cli(*as_admin(nas), "subscribe", "no.such.event", "-t", "60", env=PW_ENV)
    assert run.code == 1 and "Not authorized" in run.err


# -- where secrets come from ----------------------------------------------------------------
def test_password_from_a_named_env_variable(cli, nas):
    run = cli(*as_admin(nas, "--password-env", "NAS_PW"), "ping", env={"NAS_PW": PASSWORD})
    assert (run.code, run.out, run.err) == (0, "pong\n", "")


def test_password_from_a_file(cli, nas, tmp_path):
    path = tmp_path / "pw"
    path.write_text(PASSWORD + "\n")
    path.chmod(0o600)
    assert cli(*as_admin(nas, "--password-file", str(path)), "ping").out == "pong\n"
    path.chmod(0o644)
    refused = cli(*as_admin(nas, "--password-file", str(path)), "ping")
    assert refused.code == 1 and "chmod 600" in refused.err
    assert nas.counters.logins_ok == 1  # the open file was refused before connecting


def test_password_from_stdin(cli, nas):
    run = cli(*as_admin(nas, "-P", "-"), "ping", stdin=PASSWORD + "\n")
    assert (run.code, run.out, run.err) == (0, "pong\n", "")


def test_api_key_from_a_key_file(cli, nas, tmp_path):
    path = tmp_path / "key"
    path.write_text(API_KEY)
    path.chmod(0o600)
    run = cli(*as_admin(nas, "-K", str(path), PLAIN_KEY), "call", "auth.me")
    assert run.code == 0 and orjson.loads(run.out)["pw_name"] == "admin" and run.err == PLAIN_KEY_WARNING
    without_user = cli("--uri", nas.uri, "-K", str(path), PLAIN_KEY, "ping")
    assert (without_user.code, without_user.out) == (0, "pong\n"), "midclt habit: -K alone finds the owner"


def test_api_key_over_ws_without_the_opt_in_is_refused_unsent(cli, nas):
    """Even to 127.0.0.1: through an SSH port forward the server would see a remote client and
    revoke the key (middleware plugins/auth.py, api_key_plain; docs/protocol.md §5). The host is
    only asked whether it offers SCRAM (25.10 does not), which would keep the key off the wire."""
    run = cli(*as_admin(nas, "--api-key-env", "K"), "ping", env={"K": API_KEY})
    assert run.code == 1 and run.err.startswith("InsecureCredentialError: refusing to send the API key over ws:")
    calls = nas.counters.calls_by_method
    assert calls["auth.mechanism_choices"] == 1 and calls["auth.login_ex"] == calls["auth.login_with_api_key"] == 0
    assert API_KEY not in run.err and not nas.revoked_keys


@pytest.mark.parametrize("text", [f'{{"raw_key": "{API_KEY}", "api_key_id": 3}}',
                                  f"[TRUENAS_API_KEY]\nraw_key = {API_KEY}\napi_key_id = 3\n"])
def test_api_key_from_midclt_json_and_ini_key_files(cli, nas, tmp_path, text):
    """midclt's key files (truenas_api_client/auth_api_key.py): the raw_key goes, not the file's text."""
    path = tmp_path / "key.conf"
    path.write_text(text)
    path.chmod(0o600)
    run = cli(*as_admin(nas, "-K", str(path), PLAIN_KEY), "call", "auth.me")
    assert run.code == 0 and orjson.loads(run.out)["pw_name"] == "admin" and run.err == PLAIN_KEY_WARNING
    assert nas.counters.logins_failed == 0


def test_a_missing_key_file_is_an_error_before_connecting(cli, nas, tmp_path):
    run = cli(*as_admin(nas, "-K", f"{tmp_path}/no-such.key"), "ping")
    assert (run.code, run.out) == (1, "")
    assert run.err == f"fleetclt: -K: cannot read secret file {tmp_path}/no-such.key: No such file or directory\n"
    assert nas.counters.connections == 0


def test_precomputed_scram_material_is_refused_where_scram_is_not_offered(cli, nas, tmp_path):
    """Material from plugins/api_key.py `convert_raw_key` logs in with SCRAM only; 25.10 has none
    (plugins/auth.py `mechanism_choices`), so nothing but that question is sent."""
    path = tmp_path / "key.json"
    path.write_text('{"client_key": "Y2xp", "stored_key": "c3Rv", "server_key": "c2Vy", "api_key_id": 3}')
    path.chmod(0o600)
    run = cli(*as_admin(nas, "-K", str(path)), "ping")
    assert run.code != 0 and "precomputed SCRAM material, which logs in only where the host offers SCRAM" in run.err
    calls = nas.counters.calls_by_method
    assert calls["auth.mechanism_choices"] == 1 and calls["auth.login_ex"] == 0 and "Y2xp" not in run.err


def test_literal_password_works_with_a_warning(cli, nas):
    run = cli(*as_admin(nas, "-P", PASSWORD), "ping")
    assert (run.code, run.out) == (0, "pong\n")
    assert "visible in the process list" in run.err and PASSWORD not in run.err


def test_user_without_secret_and_without_terminal_is_a_usage_error(cli, nas):
    run = cli(*as_admin(nas), "ping")
    assert run.code == 1 and "no terminal" in run.err and nas.counters.connections == 0


def test_stdin_cannot_carry_both_secret_and_arguments(cli, nas):
    run = cli(*as_admin(nas, "-P", "-"), "call", "user.query", "-", stdin=PASSWORD + "\n[]")
    assert run.code == 1 and "both" in run.err and PASSWORD not in run.err


def test_two_secret_sources_are_refused(cli, nas):
    run = cli(*as_admin(nas, "--password-env", "X"), "call", "-K", "-", "auth.me", stdin=API_KEY)
    assert run.code == 1 and "one secret" in run.err


@pytest.mark.parametrize("source", ["env", "stdin"])
def test_secret_never_appears_in_output_or_argv(cli, nas, source):
    nas.faults.job_failure = "validation"
    args, stdin, env = (["-P", "-"], PASSWORD + "\n", {}) if source == "stdin" else ([], None, PW_ENV)
    runs = [cli("--debug", *as_admin(nas, *args), "call", *call, stdin=stdin, env=env) for call in
            (["-j", "-jp", "description", "service.control", "RESTART", "ssh"], ["auth.me"], ["no.such.method"])]
    assert [r.code for r in runs] == [1, 0, 1]
    assert "EINVAL: validation failed" in runs[0].err and orjson.loads(runs[1].out)["pw_name"] == "admin"
    for run in runs:
        assert PASSWORD not in run.out + run.err
        assert not any(PASSWORD in arg for arg in run.argv)
