"""The connection options of one-host mode (`--uri`), and what they become: TLS policy and credentials.

Connection options are accepted before the command (``fleetclt --uri U call m``)
and after it (``fleetclt call --uri U m``): ``add_connection_options`` adds them to
both parsers, with SUPPRESS defaults in the subcommand so that an option given
before the command survives. No secret ever has to be written on the command
line: stdin, a prompt, a file or an environment variable all work, and a literal
``-P``/``-K`` still works but is warned about. Each secret is wrapped in
``Secret`` the moment it is read, so it cannot reach a log line or a traceback.
A two-factor code is asked for on the terminal when the server wants one; a TOTP
secret (``--otp-secret-env``/``--otp-secret-file``) or one code (``--otp-code``,
valid for 30 s) can be given instead (docs/cli.md).
"""
from __future__ import annotations

import argparse
import getpass
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import gevent

from ..client.login import Credentials
from ..client.tls import TLSPolicy
from ..errors import ConfigError
from ..inventory.vault import use_password_file
from ..protocol.api_keys import api_key_material
from ..protocol.endpoint import normalize_fingerprint
from ..protocol.otp import totp_secret
from ..secret import Location, Secret

log = logging.getLogger(__name__)

PASSWORD_ENV, API_KEY_ENV = "FLEETCLT_PASSWORD", "FLEETCLT_API_KEY"
_NAMES_SHOWN = 10
_EXPLICIT_SECRETS = ("password", "api_key", "password_env", "api_key_env", "password_file")
_OTP_OPTIONS = ("otp_code", "otp_secret_env", "otp_secret_file")
_CODE = re.compile(r"\d{6,8}")  # a user's codes have 6 to 8 digits (docs/protocol.md §5)


def add_connection_options(parser: argparse.ArgumentParser, *, nested: bool) -> None:
    """Host, credential and TLS options; `nested` parsers leave unset options untouched."""
    default = argparse.SUPPRESS if nested else None
    group = parser.add_argument_group(
        "one host (--uri URI)", "Connection options of call, ping and subscribe on one host; refused with "
        "--hosts, where every host's settings come from the inventory.")
    group.add_argument("-u", "--uri", default=default, metavar="URI",
                       help="ws://HOST[:PORT][/api/current], wss://... or ws+unix://PATH")
    group.add_argument("-U", "--username", default=default, metavar="USER",
                       help="log in as USER (prompts for the password when no secret is given)")
    _add_secret_options(group, default)
    _add_otp_options(group, default)
    group.add_argument("--allow-plain-api-key", action="store_true", default=False if default is None else default,
                       help="send the API key over ws:// too: the server revokes it unless it sees a loopback "
                            "client, which an SSH port forward, a container port mapping or a TLS-terminating "
                            "proxy without X-Https is not")
    _add_tls_options(group, default)
    group.add_argument("--vault-password-file", action=_VaultPasswordFile, default=default, metavar="PATH",
                       help="decrypt the inventory's !vault values with the password in PATH "
                            "(default: $ANSIBLE_VAULT_PASSWORD_FILE; needs fleetclt[vault])")


class _VaultPasswordFile(argparse.Action):
    """Hands the path to the inventory's vault reader, which decrypts when a secret is revealed."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, _option: Any = None) -> None:
        use_password_file(str(values))
        setattr(namespace, self.dest, values)


def _add_secret_options(group: Any, default: Any) -> None:
    secrets = group.add_mutually_exclusive_group()
    secrets.add_argument("-P", "--password", default=default, metavar="PASS|-",
                         help="'-' reads it from stdin (or prompts); a literal is visible to other users")
    secrets.add_argument("-K", "--api-key", default=default, metavar="KEY|PATH|-",
                         help="API key: '-' reads stdin; a PATH (anything with a '/') is a key file: "
                              "raw, or midclt's JSON or INI with raw_key")
    secrets.add_argument("--password-file", default=default, metavar="PATH", help="read the password from PATH")
    secrets.add_argument("--password-env", default=default, metavar="NAME",
                         help=f"read the password from env NAME (default: ${PASSWORD_ENV} when set)")
    secrets.add_argument("--api-key-env", default=default, metavar="NAME",
                         help=f"read the API key from env NAME (default: ${API_KEY_ENV} when set)")


def _add_otp_options(group: Any, default: Any) -> None:
    otp = group.add_mutually_exclusive_group()
    otp.add_argument("--otp-code", default=default, metavar="CODE",
                     help="two-factor code for the login (valid 30 s; without it, a terminal is asked when "
                          "the server wants one)")
    otp.add_argument("--otp-secret-env", default=default, metavar="NAME",
                     help="compute two-factor codes from the base32 TOTP secret in env NAME")
    otp.add_argument("--otp-secret-file", default=default, metavar="PATH",
                     help="compute two-factor codes from the base32 TOTP secret in PATH")


def _add_tls_options(group: Any, default: Any) -> None:
    tls = group.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", default=False if default is None else default,
                     help="do not verify the server's certificate")
    tls.add_argument("--tls-fingerprint", default=default, metavar="SHA256",
                     help="trust only the certificate with this SHA-256 fingerprint (hex, colons allowed)")
    tls.add_argument("--ca-file", default=default, metavar="PATH", help="verify against this CA bundle")


def option(args: argparse.Namespace, name: str) -> Any:
    return getattr(args, name, None)


def tls_policy(args: argparse.Namespace) -> TLSPolicy:
    """--insecure turns verification off explicitly; a pin or a CA file narrows trust."""
    chosen = [flag for flag, name in (("--insecure", "insecure"), ("--tls-fingerprint", "tls_fingerprint"),
                                      ("--ca-file", "ca_file")) if option(args, name)]
    if len(chosen) > 1:
        raise ConfigError(f"choose one of {', '.join(chosen)}")
    if option(args, "insecure"):
        return TLSPolicy(verify=False)
    if option(args, "tls_fingerprint"):
        return TLSPolicy(fingerprint=_fingerprint(args.tls_fingerprint))
    if option(args, "ca_file"):
        if not os.path.isfile(args.ca_file):
            raise ConfigError(f"--ca-file {args.ca_file}: no such file")
        return TLSPolicy(ca_file=args.ca_file)
    return TLSPolicy()


def warn_unverified(names: Sequence[str], setting: str) -> None:
    """One warning per run, naming the hosts whose certificates nobody checks: off must never be silent."""
    hosts, them = _hosts(names)
    print(f"fleetclt: warning: TLS certificate checks are off ({setting}) for {hosts}: anyone on the "
          f"path can impersonate {them}; pin tls_fingerprint instead (fleetclt fingerprint prints it)",
          file=sys.stderr, flush=True)


def warn_plain_api_key(names: Sequence[str], setting: str) -> None:
    """One warning per run, naming the hosts whose API key may go over ws:// ({setting}): if the
    server does not see a loopback client, it revokes the key (docs/inventory.md)."""
    hosts, them = _hosts(names)
    print(f"fleetclt: warning: the API key goes unencrypted over ws:// ({setting}) to {hosts} unless the host "
          f"offers SCRAM (TrueNAS 26.0 and later), which never sends it: the server "
          f"revokes it for good unless it sees a loopback client; an SSH port forward, a container port "
          f"mapping or a TLS-terminating proxy without X-Https in front of {them} does not count",
          file=sys.stderr, flush=True)


def _hosts(names: Sequence[str]) -> tuple[str, str]:
    """"host nas01" or "3 hosts a, b, c" (the first ten named), and the pronoun for them."""
    shown = ", ".join(names[:_NAMES_SHOWN]) + (f" and {len(names) - _NAMES_SHOWN} more" if len(names) > _NAMES_SHOWN
                                               else "")
    return (f"{len(names)} hosts {shown}", "them") if len(names) > 1 else (f"host {shown}", "it")


def _fingerprint(text: str) -> str:
    value = normalize_fingerprint(text)
    if value is None:
        raise ConfigError(f"--tls-fingerprint {text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return value


def read_credentials(args: argparse.Namespace, host: str) -> Credentials:
    """Find at most one secret, in the documented order, and wrap it at once."""
    given = [name for name in _EXPLICIT_SECRETS if option(args, name)]
    if len(given) > 1:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise ConfigError(f"give one secret, not several ({flags})")
    user = option(args, "username")
    kind, secret = _explicit_secret(args, given[0]) if given else _default_secret(user, host)
    if kind == "password" and not user:
        raise ConfigError("a password login needs -U USER")
    if secret is not None:
        _check_readable(secret, kind)
    otp = _two_factor(args, kind)
    return Credentials(user, secret if kind == "password" else None, secret if kind == "api_key" else None,
                       allow_plain_api_key=bool(option(args, "allow_plain_api_key")), **otp)


def _two_factor(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """Credentials' two-factor sources: a secret or one code if given, and a prompt on a terminal.
    Only password logins are asked for a code, so the options are refused beside an API key."""
    given = next((name for name in _OTP_OPTIONS if option(args, name) is not None), None)
    if given is not None and kind != "password":
        why = "; an API key is never asked for a two-factor code" if kind == "api_key" else ""
        raise ConfigError(f"--{given.replace('_', '-')} applies to password logins (-U USER){why}")
    sources: dict[str, Any] = {}
    if given == "otp_code":
        if not _CODE.fullmatch(args.otp_code):
            raise ConfigError("--otp-code expects the 6 to 8 digits the authenticator app shows")
        sources["otp_code"] = Secret(args.otp_code, where=Location(key="--otp-code"))
    elif given is not None:
        flag = "--" + given.replace("_", "-")
        reference = Secret.env if given == "otp_secret_env" else Secret.file
        sources["otp_secret"] = reference(getattr(args, given), Location(key=flag))
        totp_secret(sources["otp_secret"])  # unreadable or not base32: exit 1 now, before connecting
    if kind == "password" and sys.stdin.isatty() and _has_terminal():
        sources["otp_prompt"] = _ask_code
    return sources


def _ask_code(host: str) -> str | None:
    """A code typed at the terminal (not echoed); None when none is given. Read in a thread of
    the hub's pool: the connection waiting for it keeps answering the server meanwhile."""
    try:
        code: str = gevent.get_hub().threadpool.apply(getpass.getpass, (f"Two-factor code for {host}: ",))
    except EOFError:
        return None
    return code.strip() or None


def _explicit_secret(args: argparse.Namespace, name: str) -> tuple[str, Secret]:
    value = getattr(args, name)
    if name == "password_env":
        return "password", Secret.env(value)
    if name == "api_key_env":
        return "api_key", Secret.env(value)
    if name == "password_file":
        return "password", Secret.file(value)
    if name == "api_key" and value != "-" and _names_a_file(value):
        return "api_key", Secret.file(value, Location(key="-K"))
    label = "password" if name == "password" else "API key"
    return name, _stdin_secret(label) if value == "-" else _literal_secret(name, value)


def _names_a_file(value: str) -> bool:
    """A path, even a mistyped one: a raw key (ID-SECRET) has no slash, so a missing file is an
    error here and never goes to the server as the key."""
    return os.path.exists(value) or "/" in value or value.startswith("~")


def _default_secret(user: str | None, host: str) -> tuple[str, Secret | None]:
    """$FLEETCLT_API_KEY, then $FLEETCLT_PASSWORD; a user with neither is prompted."""
    if os.environ.get(API_KEY_ENV):
        return "api_key", Secret.env(API_KEY_ENV)
    if os.environ.get(PASSWORD_ENV):
        return "password", Secret.env(PASSWORD_ENV)
    if user:
        return "password", _prompt(f"Password for {user}@{host}: ")
    return "none", None


def _literal_secret(name: str, value: str) -> Secret:
    secret = Secret(value)
    flag, env = ("-P", PASSWORD_ENV) if name == "password" else ("-K", API_KEY_ENV)
    print(f"fleetclt: warning: the secret given with {flag} is visible in the process list; "
          f"use {flag} - (stdin), a file or ${env} instead", file=sys.stderr)
    return secret


def _stdin_secret(label: str) -> Secret:
    """The first line of piped stdin, or a prompt when stdin is a terminal."""
    if sys.stdin.isatty():
        return _prompt(f"{label.capitalize()}: ")
    line = sys.stdin.readline()
    secret = Secret(line[:-2] if line.endswith("\r\n") else line.removesuffix("\n"))
    if not line.strip():
        raise ConfigError(f"no {label} on stdin (expected it on the first line)")
    return secret


def _prompt(text: str) -> Secret:
    if not _has_terminal():
        raise ConfigError("no secret given and no terminal to ask on; use -P -, --password-file PATH, "
                          f"--password-env NAME or ${PASSWORD_ENV}")
    try:
        return Secret(getpass.getpass(text))
    except EOFError:
        raise ConfigError("no secret entered") from None


def _has_terminal() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR))
    except OSError:
        return False
    return True


def secret_on_stdin(args: argparse.Namespace) -> bool:
    return "-" in (option(args, "password"), option(args, "api_key")) and not sys.stdin.isatty()


def _check_readable(secret: Secret, kind: str) -> None:
    """Fail now, with exit 1, if an env variable or file secret cannot be read, or an API key
    file holds no key fleetclt can send."""
    if kind == "api_key":
        api_key_material(secret)
    else:
        secret.reveal()
