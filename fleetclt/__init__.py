"""fleetclt: one persistent, throttled JSON-RPC session per TrueNAS host, fanned out over a fleet.

Everything a program needs is importable from here and listed in `__all__`;
the subpackages are internal and may change. The package never monkey-patches
and never configures logging: it only adds a NullHandler, so applications
decide where log records go. See docs/python-api.md.
"""
import logging

from .client.login import Credentials
from .client.session import HostSession, SessionStats, SubscriptionEnded, Timeouts
from .client.throttle import AuthThrottle, Backoff, FileStore, MemoryStore
from .client.tls import TLSPolicy
from .errors import (
    AuthError,
    CallTimeout,
    ConfigError,
    ConnectError,
    ConnectionLost,
    ConnectTimeout,
    FleetError,
    HandshakeError,
    InsecureCredentialError,
    InternalError,
    InventoryError,
    JobBusy,
    JobFailed,
    JobUnknown,
    NotAJobError,
    NotSent,
    OutcomeUnknown,
    PinMismatch,
    ProtocolError,
    RemoteCallError,
    RequestTooLarge,
    SessionError,
    StandbyError,
    ThrottledError,
    TLSError,
    TransferError,
    UnknownHostError,
    UnreachableError,
    ValidationError,
)
from .fleet.backup import backup
from .fleet.files import download
from .fleet.fleet import Fleet
from .fleet.results import FleetResult, HostResult, Status
from .fleet.upload import upload
from .inventory.load import GroupSpec, HostSpec, Inventory, load_inventory, parse_inventory
from .protocol.jobs import JobRef
from .rollout.engine import Rollout, RolloutResult, run_rollout
from .rollout.journal import HostRecord
from .rollout.observer import BaseObserver, HostState, RolloutObserver
from .rollout.plan import RolloutPlan
from .secret import Secret

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "AuthThrottle",
    "Backoff",
    "BaseObserver",
    "CallTimeout",
    "ConfigError",
    "ConnectError",
    "ConnectTimeout",
    "ConnectionLost",
    "Credentials",
    "FileStore",
    "Fleet",
    "FleetError",
    "FleetResult",
    "GroupSpec",
    "HandshakeError",
    "HostRecord",
    "HostResult",
    "HostSession",
    "HostSpec",
    "HostState",
    "InsecureCredentialError",
    "InternalError",
    "Inventory",
    "InventoryError",
    "JobBusy",
    "JobFailed",
    "JobRef",
    "JobUnknown",
    "MemoryStore",
    "NotAJobError",
    "NotSent",
    "OutcomeUnknown",
    "PinMismatch",
    "ProtocolError",
    "RemoteCallError",
    "RequestTooLarge",
    "Rollout",
    "RolloutObserver",
    "RolloutPlan",
    "RolloutResult",
    "Secret",
    "SessionError",
    "SessionStats",
    "StandbyError",
    "SubscriptionEnded",
    "Status",
    "TLSError",
    "ThrottledError",
    "Timeouts",
    "TLSPolicy",
    "TransferError",
    "UnknownHostError",
    "UnreachableError",
    "ValidationError",
    "__version__",
    "backup",
    "download",
    "load_inventory",
    "parse_inventory",
    "run_rollout",
    "upload",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
