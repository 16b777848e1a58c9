"""The SCRAM client of protocol/scram.py: published vectors, and scramp's server as the other side.

The exchange TrueNAS expects is the one in plugins/auth_/login_ex_impl.py `login_ex_scram`
and utils/crypto.py `generate_api_key_auth_data` (TS-26.0.0-BETA.2/3): SCRAM-SHA-512,
``user:KEY_ID`` as the name, tls-server-end-point binding from BETA.3.
"""
from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from gevent import ssl
from scramp import ScramMechanism

from fleetclt.protocol.scram import ScramError, ScramExchange, ScramKeys, binding_data, derive_keys

RFC_VECTORS = {
    # RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256): user "user", password "pencil".
    "sha1": ("fyko+d2lbbFgONRv9qkxdawL",
             "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
             "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
             "v=rmF9pqV8S7suAoZWja4dJRkFsKQ="),
    "sha256": ("rOprNGfwEbeRWgbNEkqO",
               "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
               "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
               "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
}
SECRET, SALT, ITERATIONS = "Zm9vYmFyYmF6" * 5 + "abcd", b"0123456789abcdef", 4096
SHA512 = ScramMechanism("SCRAM-SHA-512")


@pytest.mark.parametrize("hash_name", sorted(RFC_VECTORS))
def test_the_rfc_vectors_come_out_of_the_same_code_path(hash_name):
    nonce, server_first, client_final, server_final = RFC_VECTORS[hash_name]
    exchange = ScramExchange("user", nonce=nonce, hash_name=hash_name)
    assert exchange.client_first() == f"n,,n=user,r={nonce}"
    challenge = exchange.read_server_first(server_first)
    assert exchange.client_final(derive_keys("pencil", challenge.salt, challenge.iterations, hash_name)) == client_final
    exchange.verify_server_final(server_final)


def scramp_server(channel_binding=None, secret=SECRET):
    """scramp's SHA-512 server, as the simulator runs it, holding the key `secret` as `admin:7`."""
    def auth_info(principal):
        assert principal == "admin:7"
        return SHA512.make_auth_info(secret, iteration_count=ITERATIONS, salt=SALT)
    return SHA512.make_server(auth_info, channel_binding=channel_binding)


def run(exchange, server, keys=None):
    server.set_client_first(exchange.client_first())
    challenge = exchange.read_server_first(server.get_server_first())
    assert (challenge.salt, challenge.iterations) == (SALT, ITERATIONS)
    server.set_client_final(exchange.client_final(keys or derive_keys(SECRET, challenge.salt, challenge.iterations)))
    return server.get_server_final()


def test_an_api_key_logs_in_against_scramp_and_proves_the_server():
    exchange = ScramExchange("admin:7")
    assert exchange.client_first().startswith("n,,n=admin:7,r=")
    exchange.verify_server_final(run(exchange, scramp_server()))


def test_a_server_that_does_not_know_the_key_is_no_success():
    """Keys that are right for the proof, but a server-final signed with another key."""
    server = scramp_server()
    exchange = ScramExchange("admin:7")
    run(exchange, server)
    with pytest.raises(ScramError, match="signature is wrong"):
        exchange.verify_server_final("v=" + base64.b64encode(b"\0" * 64).decode())


def test_the_server_refuses_a_wrong_key_at_the_proof():
    from scramp import ScramException
    exchange = ScramExchange("admin:7")
    with pytest.raises(ScramException, match="keys don't match"):
        run(exchange, scramp_server(secret="x" * 64))


def test_precomputed_keys_log_in_without_the_key():
    """convert_raw_key's material: the three keys are all an exchange needs."""
    keys = derive_keys(SECRET, SALT, ITERATIONS)
    exchange = ScramExchange("admin:7")
    exchange.verify_server_final(run(exchange, scramp_server(), keys=keys))
    assert repr(keys) == "<ScramKeys>" and SECRET not in repr(exchange)


def test_a_bound_exchange_carries_the_certificates_hash(tls_files):
    """tls-server-end-point (RFC 5929 §4.1): a SHA-256-signed certificate binds its SHA-256 hash;
    scramp's server computes its own from the PEM file the host serves."""
    pem = Path(tls_files["cert"]).read_text()
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert binding_data(der) == hashlib.sha256(der).digest()
    exchange = ScramExchange("admin:7", binding_data(der))
    assert exchange.client_first().startswith("p=tls-server-end-point,,n=admin:7,")
    exchange.verify_server_final(run(exchange, scramp_server(("tls-server-end-point", pem))))


def test_binding_to_another_certificate_is_refused(tls_files):
    from scramp import ScramException
    pem = Path(tls_files["cert"]).read_text()
    exchange = ScramExchange("admin:7", hashlib.sha256(b"another certificate").digest())
    with pytest.raises(ScramException, match="channel bindings don't match"):
        run(exchange, scramp_server(("tls-server-end-point", pem)))


@pytest.mark.parametrize(("server_first", "reason"), [
    ("r=someone-elses-nonce,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096", "does not extend the client's nonce"),
    ("r={nonce}xyz,i=4096", "lacks a salt"),
    ("r={nonce}xyz,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4095", "4095 PBKDF2 iterations"),
    ("r={nonce}xyz,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=99999999", "99999999 PBKDF2 iterations"),
    ("r={nonce}xyz,s=not*base64,i=4096", "salt is not base64"),
    ("garbage", "malformed"),
])
def test_a_bad_server_first_message_is_refused_before_any_key_is_used(server_first, reason):
    exchange = ScramExchange("admin:7", nonce="abc")
    with pytest.raises(ScramError, match=reason):
        exchange.read_server_first(server_first.format(nonce="abc"))
    with pytest.raises(ScramError, match="before the server-first"):
        exchange.client_final(ScramKeys(b"a", b"b", b"c"))


def test_keys_of_another_hash_are_refused():
    """A key file's material must be SHA-512's: 64 bytes each."""
    exchange = ScramExchange("admin:7", nonce="abc")
    exchange.read_server_first("r=abcxyz,s=MDEyMzQ1Njc4OWFiY2RlZg==,i=4096")
    with pytest.raises(ScramError, match="not SHA512 keys"):
        exchange.client_final(ScramKeys(b"a" * 32, b"b" * 32, b"c" * 32))


def test_a_server_error_in_the_final_message_is_an_error():
    exchange = ScramExchange("admin:7")
    run(exchange, scramp_server())
    with pytest.raises(ScramError, match="ended the exchange: invalid-proof"):
        exchange.verify_server_final("e=invalid-proof")
