"""Two-factor logins against simulated hosts of every version, over loopback.

Modelled on plugins/auth.py (TS-24.10.2 `auth.login` with its otp_token; TS-25.04.2.6 and
TS-25.10.1 `login_ex`/`login_ex_continue`, MAX_OTP_ATTEMPTS), plugins/auth_/login_ex_impl.py
(TS-26.0.0-BETA.3, the first wrong code ends the login), plugins/account_/2fa.py (pyotp TOTP,
30 s, 6 digits, window 0) and main.py (login_ex_continue is rate-limited like every method that
needs no login). Hosts whose codes must match run on a real-time clock (the client computes codes
from the wall clock); hosts that only see wrong codes run fast.
"""
from __future__ import annotations

import pyotp
import pytest

from fleetclt.client.login import Credentials
from fleetclt.client.login_otp import CODE_REFUSED, LEGACY_REFUSED, NO_CODE, SECRET_REFUSED
from fleetclt.client.session import HostSession
from fleetclt.client.throttle import AuthThrottle, MemoryStore, TokenBucket
from fleetclt.errors import AuthError, ThrottledError
from fleetclt.fleet.fleet import Fleet
from fleetclt.inventory.load import parse_inventory
from fleetclt.protocol.otp import code_at, wait_for_fresh_code
from fleetclt.sim import ManualClock, SimClock

SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
WRONG = "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU"
PASSWORD = "pw-otp"
VERSIONS = ("24.10.2", "25.04.2", "25.10.1", "26.0.0-BETA.3")


@pytest.fixture
def otp_host(make_host):
    def make(name, version, clock=None, **config):
        return make_host(name, clock=clock or SimClock(speed=1), version=version, users={"admin": PASSWORD},
                         otp_secrets={"admin": SECRET}, **config)
    return make


@pytest.fixture
def secret_file(tmp_path):
    def write(secret):
        path = tmp_path / f"otp-{secret[:4]}"
        path.write_text(secret + "\n")
        path.chmod(0o600)
        return path
    return write


def inventory(hosts, otp_secret, address_of):
    lines = "".join(f'  {host.config.name}: {{uri: "{address_of(host)}", username: admin}}\n' for host in hosts)
    return parse_inventory(f"""\
defaults:
  password: {{env: OTP_TEST_PW}}
  otp_secret: {otp_secret}
hosts:
{lines}""", "inventory.yaml")


def login_calls(host):
    calls = host.counters.calls_by_method
    return {method: calls[method] for method in ("auth.login", "auth.login_ex", "auth.login_ex_continue")
            if calls[method]}


def uri(host):
    return host.uri if not host.config.legacy_only else f"ws://{host.address}:{host.port}/websocket"


def test_a_fleet_of_two_factor_hosts_logs_in_once_per_host(otp_host, secret_file, monkeypatch):
    """Every version with the secret by reference ({file: PATH}): one login per host however many
    calls follow; 25.04+ continue OTP_REQUIRED, 24.10 sends the code in auth.login."""
    monkeypatch.setenv("OTP_TEST_PW", PASSWORD)
    hosts = [otp_host(f"nas{i}", version) for i, version in enumerate(VERSIONS)]
    with Fleet(inventory(hosts, f"{{file: {secret_file(SECRET)}}}", uri), hub="inline") as fleet:
        results = [fleet.call("auth.me") for _ in range(3)]
    assert all(not result.failed for result in results), [r.error for r in results[-1].values()]
    assert {row.result["pw_name"] for result in results for row in result.values()} == {"admin"}
    legacy, *current = hosts
    assert login_calls(legacy) == {"auth.login": 1}
    assert all(login_calls(host) == {"auth.login_ex": 1, "auth.login_ex_continue": 1} for host in current)
    assert all(host.counters.logins_two_factor == 1 for host in current)
    assert all(host.counters.logins_ok == 1 and host.counters.logins_failed == 0 for host in hosts)


def test_a_wrong_secret_is_auth_failed_once_with_no_retry(otp_host, monkeypatch):
    """A computed code the server refused is never retried: not within the login (25.04 and 25.10
    would take three more), not by a later call; the reason names otp_secret and the clock."""
    monkeypatch.setenv("OTP_TEST_PW", PASSWORD)
    monkeypatch.setenv("OTP_TEST_SECRET", WRONG)
    hosts = [otp_host(f"nas{i}", version, ManualClock(speed=1000)) for i, version in enumerate(VERSIONS)]
    with Fleet(inventory(hosts, "{env: OTP_TEST_SECRET}", uri), hub="inline") as fleet:
        results = [fleet.call("core.ping") for _ in range(3)]
    statuses = {row.status.value for result in results for row in result.values()}
    assert statuses == {"auth_failed"}
    errors = {name: str(row.error) for name, row in results[0].items()}
    assert errors["nas0"] == f"nas0: {LEGACY_REFUSED}"
    assert all(errors[host.config.name] == f"{host.config.name}: {SECRET_REFUSED}" for host in hosts[1:])
    legacy, *current = hosts
    assert login_calls(legacy) == {"auth.login": 1}
    assert all(login_calls(host) == {"auth.login_ex": 1, "auth.login_ex_continue": 1} for host in current)
    assert all(host.counters.connections == 1 and host.counters.logins_ok == 0 for host in hosts)
    assert all(WRONG not in text and SECRET not in text for text in errors.values())


@pytest.mark.parametrize("version", ["25.04.2", "25.10.1", "26.0.0-BETA.3"])
def test_a_stig_host_takes_a_password_with_a_code(otp_host, monkeypatch, version):
    """utils/auth.py AA_LEVEL2: PASSWORD_PLAIN is the only mechanism and OTP is mandatory."""
    monkeypatch.setenv("OTP_TEST_PW", PASSWORD)
    host = otp_host("stig01", version, stig=True)
    with Fleet(inventory([host], f'"{SECRET}"', uri), hub="inline") as fleet:
        result = fleet.call("auth.me")["stig01"]
    assert result.ok, result.error
    assert host.counters.logins_two_factor == 1 and login_calls(host) == {
        "auth.login_ex": 1, "auth.login_ex_continue": 1}


def test_no_code_configured_is_auth_failed_naming_what_to_set(otp_host):
    host = otp_host("nas01", "25.10.1", ManualClock(speed=1000))
    with HostSession("nas01", host.uri, Credentials("admin", PASSWORD)) as session, \
            pytest.raises(AuthError) as refused:
        session.call("core.ping")
    assert str(refused.value) == f"nas01: {NO_CODE}"
    assert login_calls(host) == {"auth.login_ex": 1}


class Typist:
    """A person at the terminal: types the given codes in turn, then nothing."""

    def __init__(self, *codes):
        self.codes, self.asked = list(codes), []

    def __call__(self, host):
        self.asked.append(host)
        return self.codes.pop(0) if self.codes else None


def test_a_mistyped_code_is_asked_again_while_the_server_asks(otp_host):
    """25.10: a wrong code answers OTP_REQUIRED again, so the prompt may try once more."""
    host = otp_host("nas01", "25.10.1", ManualClock(speed=1000))
    typist = Typist("000000", pyotp.TOTP(SECRET).at(host.clock.wall()))
    with HostSession("nas01", host.uri, Credentials("admin", PASSWORD, otp_prompt=typist)) as session:
        assert session.call("core.ping") == "pong"
    assert typist.asked == ["nas01", "nas01"]
    assert login_calls(host) == {"auth.login_ex": 1, "auth.login_ex_continue": 2}


def test_26_ends_the_login_at_the_first_wrong_code_so_the_prompt_is_asked_once(otp_host):
    host = otp_host("nas01", "26.0.0-BETA.3", ManualClock(speed=1000))
    typist = Typist("000000", pyotp.TOTP(SECRET).at(host.clock.wall()))
    credentials = Credentials("admin", PASSWORD, otp_prompt=typist)
    with HostSession("nas01", host.uri, credentials) as session, pytest.raises(AuthError) as refused:
        session.call("core.ping")
    assert str(refused.value) == f"nas01: {CODE_REFUSED}" and typist.asked == ["nas01"]
    assert login_calls(host) == {"auth.login_ex": 1, "auth.login_ex_continue": 1}


def test_a_given_code_logs_in_on_24_10_and_25_10(otp_host):
    for version in ("24.10.2", "25.10.1"):
        host = otp_host(f"nas-{version}", version, ManualClock(speed=1000))
        code = pyotp.TOTP(SECRET).at(host.clock.wall())
        with HostSession(host.config.name, uri(host), Credentials("admin", PASSWORD, otp_code=code)) as session:
            assert session.call("core.ping") == "pong"
        assert host.counters.logins_ok == 1


def no_refill(capacity):
    return AuthThrottle(bucket=TokenBucket(capacity, refill_seconds=1e9), max_wait=0.5, store=MemoryStore())


@pytest.mark.parametrize("capacity, outcome", [(1, ThrottledError), (2, None)])
def test_the_continuation_has_its_own_auth_budget_token_before_the_socket_opens(otp_host, capacity, outcome):
    """main.py: login_ex_continue needs no login, so the server counts it like the login. With a code
    configured the client takes both tokens before it connects: with one left it sends nothing, and
    no connection waits for the second with the prompt open."""
    host = otp_host("nas01", "25.10.1")
    credentials = Credentials("admin", PASSWORD, otp_secret=SECRET)
    with HostSession("nas01", host.uri, credentials, throttle=no_refill(capacity)) as session:
        if outcome is None:
            assert session.call("core.ping") == "pong"
        else:
            with pytest.raises(outcome):
                session.call("core.ping")
    assert login_calls(host) == ({"auth.login_ex": 1, "auth.login_ex_continue": 1} if outcome is None else {})
    assert host.counters.connections == (1 if outcome is None else 0)


def test_a_token_taken_for_a_continuation_that_never_came_goes_back(otp_host):
    """24.10 takes the code in auth.login, one call: of the two tokens taken, one is given back, so
    three tokens serve two logins."""
    host = otp_host("nas01", "24.10.2", ManualClock(speed=1000))
    throttle = no_refill(3)
    for _ in range(2):
        code = pyotp.TOTP(SECRET).at(host.clock.wall())
        with HostSession("nas01", uri(host), Credentials("admin", PASSWORD, otp_code=code),
                         throttle=throttle) as session:
            assert session.call("core.ping") == "pong"
    assert login_calls(host) == {"auth.login": 2} and host.counters.logins_ok == 2


def test_codes_are_computed_only_when_they_stay_valid_for_the_round_trip():
    assert wait_for_fresh_code(60.0) == 0.0 and wait_for_fresh_code(88.0) == 0.0
    assert wait_for_fresh_code(88.5) == pytest.approx(1.5)
    assert code_at(SECRET, 59.0) == pyotp.TOTP(SECRET).at(59) != code_at(SECRET, 60.0)
