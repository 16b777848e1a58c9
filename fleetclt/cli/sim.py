"""`fleetclt sim`: serve simulated hosts in the foreground until SIGINT/SIGTERM.

Either N generated hosts (and a ready-to-use inventory that references the
password by file or environment variable, never in clear), or every loopback
host of an existing inventory with that inventory's own credentials.
"""
from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import gevent
from gevent.event import Event

from ..errors import ConfigError, did_you_mean
from ..inventory.load import HostSpec, load_inventory
from ..local.state import write_private
from ..protocol.otp import totp_secret
from ..sim.clock import SimClock
from ..sim.config import DEFAULT_USER, Faults, HostConfig
from ..sim.fleet import SimFleet, new_password, write_inventory
from .argtypes import seconds

DEFAULT_PORT = 6000
SIM_TRAINS = ((24, 10), (25, 4), (25, 10), (26, 0))  # the releases modelled (docs/simulator.md)
_VERSION = re.compile(r"(\d+)\.(\d+)\.\d+(?:-[A-Z]+\.\d+)?")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--inventory", dest="sim_inventory", metavar="PATH",
                        help="serve every loopback host of this inventory, with its credentials")
    parser.add_argument("--count", type=int, default=3, help="hosts to simulate (default 3)")
    parser.add_argument("--listen", default="127.1.0.1", metavar="ADDR",
                        help="first loopback address; host i listens on ADDR+i (default 127.1.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on every address; 0 picks a free one per host (default {DEFAULT_PORT})")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added latency per call")
    parser.add_argument("--job-seconds", type=float, default=2.0, help="how long each job runs (default 2)")
    parser.add_argument("--nginx", action="store_true",
                        help="model the nginx in front of a real host: it closes a websocket idle for 60 s "
                             "before 26.0-BETA.2, 3600 s from it")
    parser.add_argument("--idle-timeout", type=seconds, metavar="SECONDS",
                        help="cut a connection that sent nothing for this long, as a proxy in front of a host does")
    parser.add_argument("--version", dest="versions", action="append", type=sim_version, metavar="X.Y.Z",
                        help="TrueNAS version to play; repeat for a mixed fleet (24.10.2 speaks only /websocket)")
    parser.add_argument("--write-inventory", type=Path, metavar="PATH",
                        help="write an inventory for these hosts; the password goes to PATH.secret (mode 0600)")
    parser.add_argument("--password-env", dest="sim_password_env", metavar="NAME",
                        help="reference the password as {env: NAME} instead; its value is printed once on stderr")
    parser.add_argument("--failing", metavar="NAMES", default="",
                        help="comma-separated host names whose jobs fail halfway (to rehearse failures)")
    parser.add_argument("--certfile", help="serve wss:// with this certificate (PEM)")
    parser.add_argument("--keyfile", help="private key of --certfile")


def run(args: argparse.Namespace, inventory_path: str | None, stdout: TextIO | None = None,
        stderr: TextIO | None = None) -> int:
    """Serve until interrupted; returns the exit code. The streams are looked up when called (cli/stdout.py)."""
    stdout, stderr = stdout or sys.stdout, stderr or sys.stderr
    faults = Faults(latency=args.latency_ms / 1000, job_duration=args.job_seconds, idle_timeout=args.idle_timeout)
    password = ""
    if inventory_path:
        fleet = _fleet_from_inventory(inventory_path, args, stderr)
    else:
        password = _password(args)
        fleet = _generated_fleet(args, faults, password)
    failing = _failing(args.failing, [host.name for host in fleet.hosts])
    for host in fleet.hosts:
        host.faults = replace(faults, job_failure="error" if host.name in failing else None)
        host.config = replace(host.config, nginx=args.nginx)
    stop = Event()
    handlers = [gevent.signal_handler(sig, stop.set) for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        _start(fleet)
        note = _announce(fleet, args, inventory_path, password, stderr)
        print(f"READY {len(fleet.hosts)} hosts {_span(fleet)} {note}".rstrip(), file=stdout, flush=True)
        stop.wait()
    finally:
        for handler in handlers:
            handler.cancel()
        fleet.stop()
    print(f"stopped {len(fleet.hosts)} hosts", file=stderr, flush=True)
    return 0


def sim_version(text: str) -> str:
    """A release of a train the simulator models (docs/simulator.md), e.g. 25.10.1 or 26.0.0-BETA.2."""
    found = _VERSION.fullmatch(text)
    if not found or (int(found[1]), int(found[2])) not in SIM_TRAINS:
        trains = ", ".join(f"{major}.{minor:02d}" if minor else f"{major}.0" for major, minor in SIM_TRAINS)
        raise argparse.ArgumentTypeError(f"{text!r} is not a version the simulator plays: X.Y.Z of {trains} "
                                         "(e.g. 25.10.1 or 26.0.0-BETA.2)")
    return text


def _failing(names: str, hosts: list[str]) -> set[str]:
    """--failing NAMES: each must be one of the simulated hosts, or the rehearsal would silently fail nothing."""
    failing = {name for name in names.split(",") if name}
    unknown = sorted(failing - set(hosts))
    if unknown:
        hint = did_you_mean(unknown[0], hosts) or f"; the hosts are {_names_span(hosts)}"
        raise ConfigError(f"--failing: no simulated host named {unknown[0]!r}{hint}")
    return failing


def _names_span(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 5 else f"{names[0]} .. {names[-1]}"


def _start(fleet: SimFleet) -> None:
    """Listen on every host's address; a port in use is one line that says what to do."""
    try:
        fleet.start()
    except OSError as exc:
        hint = " (another simulator? --port 0 picks free ports)" if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {_span(fleet)}: {exc.strerror or exc}{hint}") from None


def _announce(fleet: SimFleet, args: argparse.Namespace, inventory_path: str | None, password: str,
              stderr: TextIO) -> str:
    """Write the inventory (ports are known only once listening) or show the password once."""
    if inventory_path:
        return f"inventory={inventory_path}"
    if args.write_inventory:
        return _write(fleet, args, password, stderr)
    if not args.sim_password_env:
        print(f"login: {DEFAULT_USER} / {password}  (shown once; use --write-inventory to keep it in a file)",
              file=stderr, flush=True)
    return ""


def _span(fleet: SimFleet) -> str:
    first, last = fleet.hosts[0], fleet.hosts[-1]
    return first.uri if first is last else f"{first.uri} .. {last.uri}"


def _generated_fleet(args: argparse.Namespace, faults: Faults, password: str) -> SimFleet:
    if args.count < 1:
        raise ConfigError("--count must be at least 1")
    fleet = SimFleet.create(args.count, base_address=args.listen, port=args.port,
                            users={DEFAULT_USER: password}, faults=faults,
                            versions=args.versions or ("25.10.1",))
    if args.certfile:
        fleet = SimFleet.from_configs([_with_tls(h.config, args) for h in fleet.hosts], fleet.clock)
    return fleet


def _password(args: argparse.Namespace) -> str:
    """Reuse an already exported variable so a restarted simulator keeps its password."""
    if args.sim_password_env and os.environ.get(args.sim_password_env):
        return os.environ[args.sim_password_env]
    return new_password()


def _with_tls(config: HostConfig, args: argparse.Namespace) -> HostConfig:
    return replace(config, certfile=args.certfile, keyfile=args.keyfile)


def _write(fleet: SimFleet, args: argparse.Namespace, password: str, stderr: TextIO) -> str:
    try:
        return _write_files(fleet, args, password, stderr)
    except OSError as exc:
        raise ConfigError(f"cannot write the inventory {args.write_inventory}: {exc.strerror}") from None


def _write_files(fleet: SimFleet, args: argparse.Namespace, password: str, stderr: TextIO) -> str:
    path: Path = args.write_inventory
    if args.sim_password_env:
        reference = {"env": args.sim_password_env}
        if os.environ.get(args.sim_password_env) != password:
            print(f"export {args.sim_password_env}='{password}'   # shown once", file=stderr, flush=True)
    else:
        secret_path = path.with_name(path.name + ".secret")
        write_private(secret_path, password + "\n")  # 0600, written atomically
        reference = {"file": str(secret_path.resolve())}
    write_inventory(path, fleet.inventory(reference), f"written by fleetclt sim for {len(fleet.hosts)} hosts")
    return f"inventory={path}"


def _fleet_from_inventory(path: str, args: argparse.Namespace, stderr: TextIO) -> SimFleet:
    inventory = load_inventory(path)
    configs, skipped = [], {}
    for spec in inventory.hosts.values():
        reason = _unservable(spec, args)
        if reason is None:
            try:
                configs.append(_config_for(spec, args))
            except ConfigError as exc:  # e.g. its secret's variable is not set here
                reason = str(exc)
        if reason is not None:
            print(f"skipping {spec.name}: {reason}", file=stderr)
            skipped[spec.name] = reason
    if not configs:
        reasons = set(skipped.values())
        why = reasons.pop() if len(reasons) == 1 else f"each of its {len(skipped)} hosts was skipped (see above)"
        raise ConfigError(f"{path}: no host to serve: {why}")
    return SimFleet.from_configs(configs, SimClock())


def _unservable(spec: HostSpec, args: argparse.Namespace) -> str | None:
    try:
        loopback = ipaddress.ip_address(spec.address).is_loopback
    except ValueError:
        loopback = spec.address == "localhost"
    if not loopback:
        return f"{spec.address} is not a loopback address (the simulator listens on 127.0.0.0/8 only)"
    if spec.uri.startswith("wss") and not args.certfile:
        return "wss:// needs --certfile and --keyfile"
    return None


def _config_for(spec: HostSpec, args: argparse.Namespace) -> HostConfig:
    username = spec.username or DEFAULT_USER
    users = {username: spec.password.reveal()} if spec.password else {}
    keys = {spec.api_key.reveal(): username} if spec.api_key else {}
    otp = {username: totp_secret(spec.otp_secret)} if spec.otp_secret else {}
    version = str(spec.vars.get("sim_version", "24.10.2" if spec.uri.endswith("/websocket") else "25.10.1"))
    tls = {"certfile": args.certfile, "keyfile": args.keyfile} if spec.uri.startswith("wss") else {}
    address = "127.0.0.1" if spec.address == "localhost" else spec.address
    return HostConfig(spec.name, address=address, port=spec.port, version=version,
                      users=users, api_keys=keys, otp_secrets=otp, **tls)
