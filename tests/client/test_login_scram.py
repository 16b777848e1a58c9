"""API key logins with SCRAM against the simulator over loopback, real sockets.

The server side is modelled on plugins/auth_/login_ex_impl.py `login_ex_scram`, plugins/auth.py
`mechanism_choices` and `login_ex`, utils/crypto.py `generate_api_key_auth_data` and
plugins/api_key.py `convert_raw_key` (TS-26.0.0-BETA.2/3), utils/account/authenticator.py
ScramPamAuthenticator (channel binding from TS-26.0.0-BETA.3), and plugins/auth.py
`login_with_api_key` (removed_in='v27' on the middleware's master).
"""
from __future__ import annotations

import base64
import json
import logging
import secrets

import gevent
import pytest

from fleetclt.client import login
from fleetclt.client.login import Credentials
from fleetclt.client.login_scram import DERIVED, KeyCache
from fleetclt.client.session import HostSession, Timeouts
from fleetclt.client.throttle import AuthThrottle, MemoryStore, TokenBucket
from fleetclt.client.tls import TLSPolicy
from fleetclt.errors import AuthError, InsecureCredentialError, ThrottledError
from fleetclt.protocol.scram import Challenge, ScramError, derive_keys
from fleetclt.secret import Secret
from fleetclt.sim.auth_scram import key_salt
from tests.client.fake_time import FakeTime

KEY = "7-" + "Zm9vYmFyYmF6" * 5 + "abcd"
ITERATIONS = 4096  # the simulator's material; 500,000 on a real host (utils/crypto.py)
FORWARDED = "192.0.2.7"  # every client looks as if it came through a port forward from here


def scram_host(make_host, version="26.0.0-BETA.3", **config):
    config.setdefault("proxied_from", FORWARDED)
    return make_host(version=version, api_keys={KEY: "admin"}, scram_iterations=ITERATIONS, **config)


def key_session(session_for, host, key=KEY, username="admin", **kwargs):
    """No session token: a reconnect logs in with SCRAM again, whenever the cut comes (with tokens
    it would depend on whether the token's answer came first; tokens: test_tokens.py)."""
    kwargs.setdefault("timeouts", Timeouts(connect=5, call=10, session_token=None))
    return session_for(host, credentials=Credentials(username, api_key=Secret(key)), **kwargs)


def test_api_key_over_ws_logs_in_with_scram_and_is_never_revoked(make_host, session_for):
    """The must-show: a host that sees a port-forwarded client over ws:// revokes a plain key;
    with SCRAM the key never crosses the wire, so no allow_plain_api_key is needed."""
    host = scram_host(make_host)
    session = key_session(session_for, host)
    assert session.call("auth.me")["pw_name"] == "admin"
    assert host.counters.logins_scram == 1 and host.counters.logins_api_key == 0
    assert KEY not in host.revoked_keys and host.counters.logins_failed == 0
    calls = host.counters.calls_by_method
    assert (calls["auth.mechanism_choices"], calls["auth.login_ex"], calls["auth.login_with_api_key"]) == (1, 2, 0)
    host.drop_connections()
    assert session.call("core.ping") == "pong"
    assert calls["auth.mechanism_choices"] == 1, "a reconnect does not ask again"
    assert calls["auth.login_ex"] == 4 and host.counters.logins_scram == 2 and session.stats.connects == 2


def test_a_host_without_scram_gets_no_plain_key_over_ws(make_host, session_for):
    """25.10 offers no SCRAM: the key would go plain, and the host would revoke it. Refused before
    it is sent, and remembered: the next call does not connect again."""
    host = scram_host(make_host, version="25.10.1")
    session = key_session(session_for, host)
    with pytest.raises(InsecureCredentialError, match="does not offer SCRAM"):
        session.call("core.ping")
    calls = host.counters.calls_by_method
    assert calls["auth.mechanism_choices"] == 1 and calls["auth.login_ex"] == calls["auth.login_with_api_key"] == 0
    assert KEY not in host.revoked_keys
    with pytest.raises(InsecureCredentialError):
        session.call("core.ping")
    assert host.counters.connections == 1


def test_a_wrong_key_fails_after_exactly_one_exchange(make_host, session_for):
    host = scram_host(make_host)
    session = key_session(session_for, host, key="7-" + "x" * 64)
    for _ in range(3):
        with pytest.raises(AuthError, match="username or secret refused"):
            session.call("core.ping")
    assert host.counters.calls_by_method["auth.login_ex"] == 2, "one exchange: client-first, client-final"
    assert host.counters.logins_failed == 1 and host.counters.connections == 1


def test_a_precomputed_key_file_logs_in_on_26(make_host, session_for, tmp_path):
    """convert_raw_key's answer, saved as a JSON key file with the owner's name: no raw key at all."""
    host = scram_host(make_host)
    key_id, secret = KEY.split("-", 1)
    keys = derive_keys(secret, key_salt(host.name, key_id), ITERATIONS)
    material = {name: base64.b64encode(getattr(keys, name)).decode()
                for name in ("client_key", "stored_key", "server_key")}
    key_file = tmp_path / "nas01.key"
    key_file.write_text(json.dumps({**material, "api_key_id": int(key_id), "username": "admin"}))
    key_file.chmod(0o600)
    session = session_for(host, credentials=Credentials(api_key=Secret.file(str(key_file))))
    assert session.call("auth.me")["pw_name"] == "admin" and host.counters.logins_scram == 1


def test_precomputed_material_is_refused_where_scram_is_not_offered(make_host, session_for, tmp_path):
    host = scram_host(make_host, version="25.10.1", proxied_from=None)
    text = json.dumps({"client_key": "Y2xpZW50", "stored_key": "c3RvcmVk", "server_key": "c2VydmVy",
                       "api_key_id": 7})
    session = session_for(host, credentials=Credentials("admin", api_key=Secret(text), allow_plain_api_key=True))
    with pytest.raises(AuthError, match="precomputed SCRAM material, which logs in only where the host offers"):
        session.call("core.ping")
    assert host.counters.calls_by_method["auth.login_ex"] == 0


def test_wss_binds_the_exchange_to_the_certificate_on_beta_3(make_host, session_for, tls_files, caplog):
    host = scram_host(make_host, proxied_from=None, certfile=tls_files["cert"], keyfile=tls_files["key"])
    caplog.set_level(logging.DEBUG, logger="fleetclt.client.link")
    session = key_session(session_for, host, tls=TLSPolicy(ca_file=tls_files["ca"]))
    assert session.call("auth.me")["pw_name"] == "admin" and host.counters.logins_scram == 1
    assert "p=tls-server-end-point,,n=admin:7," in caplog.text, "the client-first message asked for binding"
    assert host.counters.calls_by_method["auth.login_ex"] == 2 and host.counters.logins_failed == 0


def test_wss_on_beta_2_falls_back_to_an_unbound_exchange_once(make_host, session_for, tls_files):
    """26.0.0-BETA.2 offers SCRAM without channel binding and refuses a bound client-first message
    (as BETA.3 does behind a TLS-terminating proxy, where it does not see TLS)."""
    host = scram_host(make_host, version="26.0.0-BETA.2", proxied_from=None, certfile=tls_files["cert"],
                      keyfile=tls_files["key"])
    session = key_session(session_for, host, tls=TLSPolicy(ca_file=tls_files["ca"]))
    assert session.call("core.ping") == "pong" and host.counters.logins_scram == 1
    assert host.counters.calls_by_method["auth.login_ex"] == 3 and host.counters.logins_failed == 1
    host.drop_connections()
    assert session.call("core.ping") == "pong"
    assert host.counters.calls_by_method["auth.login_ex"] == 5, "the session remembers: unbound at once"


def test_scram_is_never_tried_over_the_unix_socket(make_host, session_for, tmp_path):
    """ScramPamAuthenticator refuses non-TCP origins; the Unix socket is a safe place for a plain key."""
    host = scram_host(make_host, proxied_from=None, unix_path=str(tmp_path / "middlewared.sock"))
    assert key_session(session_for, host).call("core.ping") == "pong"
    calls = host.counters.calls_by_method
    assert calls["auth.mechanism_choices"] == 0 and host.counters.logins_api_key == 1


def test_a_fleet_sharing_one_key_derives_it_once(make_host):
    """500 hosts holding the same key with the same salt and count: PBKDF2 runs once in the process,
    however many logins wait for it at the same time."""
    key = "7-" + secrets.token_hex(32)  # a key no other test derived in this process
    hosts = [make_host(name="nas", version="26.0.0-BETA.3", api_keys={key: "admin"}, scram_iterations=ITERATIONS)
             for _ in range(500)]
    throttle = AuthThrottle(sleep=gevent.sleep)
    sessions = [HostSession(f"nas{i}", host.uri, Credentials("admin", api_key=key), throttle=throttle,
                            timeouts=Timeouts(connect=30, login=60, call=60)) for i, host in enumerate(hosts)]
    before = DERIVED.derivations
    try:
        replies = [job.get() for job in [gevent.spawn(s.call, "core.ping") for s in sessions]]
        assert replies == ["pong"] * 500
        assert DERIVED.derivations - before == 1
        assert sum(host.counters.logins_scram for host in hosts) == 500
    finally:
        for session in sessions:
            session.close()


def test_a_key_without_username_warns_once_that_api_v27_drops_its_login(make_host, session_for, monkeypatch,
                                                                      caplog):
    monkeypatch.setattr(login, "_warned_key_only", False)
    host = make_host(version="26.0.0-BETA.3", api_keys={KEY: "admin"})  # loopback seen as secure
    for _ in range(2):
        session = session_for(host, credentials=Credentials(api_key=Secret(KEY), allow_plain_api_key=True))
        assert session.call("auth.me")["pw_name"] == "admin"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "API v27" in r.getMessage()]
    assert len(warnings) == 1 and "set the key owner's username" in warnings[0].getMessage()
    assert host.counters.calls_by_method["auth.login_with_api_key"] == 2
    assert host.counters.calls_by_method["auth.mechanism_choices"] == 0, "nothing to ask: SCRAM needs the owner"


def test_a_scram_login_takes_a_budget_token_per_login_ex_before_the_socket_opens(make_host, session_for):
    """The server counts both login_ex calls (docs/protocol.md §6): a connect takes two tokens up
    front, so no unauthenticated connection waits for the second. 3 tokens and no refill: the
    first connect spends two; the next gets one, gives it back and opens nothing."""
    host = scram_host(make_host)
    fake = FakeTime()
    throttle = AuthThrottle(bucket=TokenBucket(3, 10_000, fake.clock), sleep=fake.sleep, store=MemoryStore(),
                            max_wait=0)
    session = key_session(session_for, host, throttle=throttle)
    assert session.call("core.ping") == "pong"
    host.drop_connections()
    with pytest.raises(ThrottledError):
        session.call("core.ping")
    assert host.counters.connections == 1 and host.counters.calls_by_method["auth.login_ex"] == 2
    assert host.counters.unauthenticated_calls == 4, "system.boot_id, auth.mechanism_choices, two login_ex"


def test_a_plain_key_gives_back_the_token_kept_for_scram(make_host, session_for, tls_files):
    """25.10 over wss: asked once, no SCRAM, the key goes plain with one token; the second comes back
    and later connects take one each. 3 tokens and no refill: three connects."""
    host = make_host(version="25.10.1", api_keys={KEY: "admin"}, certfile=tls_files["cert"], keyfile=tls_files["key"])
    fake = FakeTime()
    throttle = AuthThrottle(bucket=TokenBucket(3, 10_000, fake.clock), sleep=fake.sleep, store=MemoryStore(),
                            max_wait=0)
    session = key_session(session_for, host, throttle=throttle, tls=TLSPolicy(ca_file=tls_files["ca"]))
    for _ in range(3):
        assert session.call("core.ping") == "pong"
        host.drop_connections()
    with pytest.raises(ThrottledError):
        session.call("core.ping")
    calls = host.counters.calls_by_method
    assert (calls["auth.mechanism_choices"], calls["auth.login_ex"], host.counters.logins_api_key) == (1, 3, 3)


def test_a_controller_without_scram_after_a_failover_gets_the_plain_rule(make_host, session_for):
    """The session learned SCRAM on a 26.0 controller; its peer still runs 25.10 (an HA upgrade
    goes one controller at a time). login_ex refuses the SCRAM tag there (a validation error,
    api/v25_10_x/auth.py AuthLoginExArgs) before any key is used: the key goes plain, as allowed."""
    new = make_host(version="26.0.0-BETA.3", api_keys={KEY: "admin"}, scram_iterations=ITERATIONS)
    old = make_host(name="nas01b", address="127.0.0.2", version="25.10.1", api_keys={KEY: "admin"})
    session = session_for(new, credentials=Credentials("admin", api_key=Secret(KEY), allow_plain_api_key=True),
                          controllers=[old.uri])
    assert session.call("core.ping") == "pong" and new.counters.logins_scram == 1
    new.stop()
    assert session.call("core.ping") == "pong"
    assert old.counters.calls_by_method["auth.login_ex"] == 2 and old.counters.logins_api_key == 1
    assert old.counters.calls_by_method["auth.mechanism_choices"] == 0


def test_the_key_cache_derives_once_for_its_waiters_and_keeps_no_failure():
    cache = KeyCache()
    challenge = Challenge(b"0123456789abcdef", ITERATIONS)
    jobs = [gevent.spawn(cache.keys, "secret", challenge) for _ in range(20)]
    gevent.joinall(jobs, timeout=30, raise_error=True)
    assert cache.derivations == 1 and len({id(job.value) for job in jobs}) == 1
    bad = [gevent.spawn(cache.keys, "bell\x07", challenge) for _ in range(3)]  # SASLprep refuses control characters
    gevent.joinall(bad, timeout=30)
    assert all(isinstance(job.exception, ScramError) for job in bad), "each waiter gets the error, none hangs"
    assert cache.derivations == 4 and "secret" not in repr(cache)


def test_with_tls_checks_off_a_refused_binding_is_not_retried_unbound(make_host, session_for, tls_files):
    """Without a checked certificate, a refusal of the bound message may come from a man in the
    middle who would relay the unbound exchange: auth_failed after that one message."""
    host = scram_host(make_host, version="26.0.0-BETA.2", proxied_from=None, certfile=tls_files["cert"],
                      keyfile=tls_files["key"])
    session = key_session(session_for, host, tls=TLSPolicy(verify=False))
    with pytest.raises(AuthError, match="does not retry unbound"):
        session.call("core.ping")
    assert host.counters.calls_by_method["auth.login_ex"] == 1 and host.counters.logins_scram == 0
    pinned = key_session(session_for, host, tls=TLSPolicy(fingerprint=tls_files["pin"]))
    assert pinned.call("core.ping") == "pong", "a pinned certificate is checked: unbound after the refusal"
