"""Domain methods: pools, datasets, users, services and updates.

Enough of the real API that demos and rollouts mean something. Job methods
spend `faults.job_duration` simulated seconds in evenly spaced progress steps
and fail at `faults.fail_at_percent` when `faults.job_failure` says so.
"""
from __future__ import annotations

import errno
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .data import SERVICES, make_user
from .failures import CallError, ValidationErrors, errname
from .jobs import REDACTED, Job
from .query import MatchNotFound, filter_list
from .registry import Param, api

if TYPE_CHECKING:
    from .connection import Connection

QUERY = (Param("filters", (list,), []), Param("options", (dict,), {}))
UPDATE_STEPS = ("Checking for updates", "Downloading update", "Verifying update signature",
                "Extracting update", "Creating boot environment", "Installing packages",
                "Updating boot loader", "Migrating configuration", "Running post-install tasks",
                "Finalizing update")


def work(conn: Connection, job: Job, steps: Sequence[str]) -> None:
    """Spend the job's duration in progress steps (holding while the host holds jobs); fail
    midway if the host is set to."""
    faults = conn.host.faults
    pause = faults.job_duration / max(1, len(steps))
    for index, description in enumerate(steps):
        percent = 100 * index // len(steps)
        if faults.job_failure and percent >= faults.fail_at_percent:
            _fail(faults.job_failure, job.method)
        job.set_progress(percent, description)
        conn.host.clock.sleep(pause)
        conn.host.jobs_released.wait()
    if faults.job_failure:
        _fail(faults.job_failure, job.method)


def _fail(kind: str, method: str) -> None:
    if kind == "validation":
        raise ValidationErrors.single(f"{method}.options", "Simulated validation failure")
    raise CallError(f"Simulated failure of {method}", errno.EIO)


# -- pools and datasets ---------------------------------------------------
@api("pool.query", *QUERY)
def pool_query(conn: Connection, filters: list[Any], options: dict[str, Any]) -> Any:
    return filter_list(conn.host.data.pools, filters, options)


@api("pool.dataset.query", *QUERY)
def dataset_query(conn: Connection, filters: list[Any], options: dict[str, Any]) -> Any:
    return filter_list(conn.host.data.datasets, filters, options)


def _encrypted_dataset(conn: Connection, name: str) -> dict[str, Any]:
    dataset = conn.host.data.dataset(name)
    if dataset is None:
        raise ValidationErrors.single("id", f"{name} dataset does not exist", errno.ENOENT)
    if not dataset["encrypted"]:
        raise ValidationErrors.single("id", "Only datasets which are encrypted with passphrase can be locked")
    return dataset


@api("pool.dataset.lock", Param("id", (str,)), Param("options", (dict,), {"force_umount": False}),
     job=True, lock=lambda name, *_: f"dataset_lock_{name}", description=lambda name, *_: f"Locking {name}")
def dataset_lock(conn: Connection, job: Job, name: str, options: dict[str, Any]) -> bool:
    dataset = _encrypted_dataset(conn, name)
    work(conn, job, ("Unmounting dataset", "Unloading encryption key", "Updating attachments"))
    dataset["locked"] = True
    conn.host.publish("pool.dataset.query", "changed", name, {"locked": True})
    return True


def _unlock_args_shown(args: list[Any]) -> list[Any]:
    """The unlock options' passphrases and keys are secrets: a job shows them as "********"."""
    name, options = args
    datasets = [{k: REDACTED if k in ("passphrase", "key") else v for k, v in item.items()}
                if isinstance(item, dict) else item for item in options.get("datasets") or []]
    return [name, {**options, "datasets": datasets} if "datasets" in options else options]


@api("pool.dataset.unlock", Param("id", (str,)), Param("options", (dict,), {}),
     job=True, lock=lambda name, *_: f"dataset_lock_{name}", description=lambda name, *_: f"Unlocking {name}",
     redact_args=_unlock_args_shown)
def dataset_unlock(conn: Connection, job: Job, name: str, options: dict[str, Any]) -> dict[str, Any]:
    dataset = _encrypted_dataset(conn, name)
    work(conn, job, ("Loading encryption key", "Mounting dataset", "Restarting services"))
    dataset["locked"] = False
    conn.host.publish("pool.dataset.query", "changed", name, {"locked": False})
    return {"unlocked": [name], "failed": {}}


@api("pool.dataset.export_key", Param("id", (str,)), Param("download", (bool,), False),
     job=True, lock=lambda *_: "dataset_export_keys", secret_result=True)
def dataset_export_key(conn: Connection, job: Job, name: str, download: bool) -> str:
    """A job whose result is a secret (`Secret[str | None]` in its result model). `download`
    needs an output pipe (`job.check_pipe`), which a websocket call cannot open."""
    if download:
        raise ValueError("Pipe 'output' is not open")
    dataset = conn.host.data.dataset(name)
    if dataset is None or not dataset["encrypted"]:
        raise CallError("Specified dataset does not have it's own encryption key.", errno.EINVAL)
    return hashlib.sha256(f"{conn.host.name}/{name}".encode()).hexdigest()


# -- users ------------------------------------------------------------------
@api("user.query", *QUERY)
def user_query(conn: Connection, filters: list[Any], options: dict[str, Any]) -> Any:
    return filter_list(conn.host.data.users, filters, options)


@api("user.get_instance", Param("id", (int,)), Param("options", (dict,), {}))
def user_get_instance(conn: Connection, user_id: int, options: dict[str, Any]) -> Any:
    try:
        return filter_list(conn.host.data.users, [["id", "=", user_id]], {**options, "get": True})
    except MatchNotFound:
        raise ValidationErrors.single(None, f"User {user_id} does not exist", errno.ENOENT) from None


def _check_new_user(conn: Connection, data: dict[str, Any]) -> None:
    errors = [(f"user_create.{name}", "Field required", errno.EINVAL)
              for name in ("username", "full_name") if name not in data]
    if not data.get("password") and not data.get("password_disabled"):
        errors.append(("user_create.password", "Password is required if `password_disabled` is false",
                       errno.EINVAL))
    if any(u["username"] == data.get("username") for u in conn.host.data.users):
        errors.append(("user_create.username", f'The username "{data["username"]}" already exists.',
                       errno.EEXIST))
    if errors:
        raise ValidationErrors(errors)


@api("user.create", Param("user_create", (dict,)))
def user_create(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    _check_new_user(conn, data)
    user_id, uid = conn.host.data.next_ids()
    user = make_user(user_id, uid, data["username"], data["full_name"], False)
    user.update({k: v for k, v in data.items() if k in user and k not in ("id", "uid", "builtin")})
    conn.host.data.users.append(user)
    conn.host.publish("user.query", "added", user_id, user)
    return user


# -- services and updates -----------------------------------------------------
SERVICE_VERBS = ("START", "STOP", "RESTART", "RELOAD")
SERVICE_STEPS = {"START": ("Starting",), "STOP": ("Stopping",), "RELOAD": ("Reloading",)}
SERVICE_PAUSE = 0.2  # simulated seconds a plain service.* call spends stopping and starting


def _known_service(service: str) -> None:
    if service not in SERVICES:
        raise ValidationErrors.single("service", f"The service {service!r} does not exist", errno.ENOENT)


# plugins/service.py: service.restart is a plain method returning a bool on every version
# (private from 26.0, still callable by a full admin); 25.10 adds the job service.control.
@api("service.restart", Param("service", (str,)), Param("options", (dict,), {}))
def service_restart(conn: Connection, service: str, options: dict[str, Any]) -> bool:
    _known_service(service)
    conn.host.clock.sleep(SERVICE_PAUSE)
    conn.host.data.services[service] = "RUNNING"
    return True


@api("service.control", Param("verb", (str,)), Param("service", (str,)), Param("options", (dict,), {}),
     job=True, lock=lambda verb, name, *_: f"service_{name}", since=(25, 10))
def service_control(conn: Connection, job: Job, verb: str, service: str, options: dict[str, Any]) -> bool:
    if verb not in SERVICE_VERBS:
        raise ValidationErrors.single("service_control.verb", f"Input should be {', '.join(map(repr, SERVICE_VERBS))}")
    _known_service(service)
    steps = SERVICE_STEPS.get(verb, ("Stopping", "Starting"))
    work(conn, job, [f"{step} {service}" for step in steps])
    conn.host.data.services[service] = "STOPPED" if verb == "STOP" else "RUNNING"
    return True


# Up to 25.04 the update job is update.update (plugins/update.py `update`); from 25.10 it is
# update.run (plugins/update_/update.py `run`) and update.update is the ConfigService update
# of {autocheck, profile} (plugins/update_/config.py `do_update`), not a job.
UPDATE_CONFIG_FIELDS = frozenset({"autocheck", "profile"})
NEW_UPDATES = (25, 10)


def _run_update(conn: Connection, job: Job, options: dict[str, Any]) -> bool:
    """Download and install; 25.10+ first checks the update status (plugins/update_/status.py)."""
    if conn.host.config.version_info >= NEW_UPDATES and not options.get("resume"):
        conn.host.check_update_allowed()
    work(conn, job, UPDATE_STEPS)
    conn.host.update_applied()
    if options.get("reboot"):
        conn.host.spawn_later(1.0, conn.host.restart)
    return True


@api("update.update", Param("update", (dict,), {}), job=True, lock=lambda *_: "update", until=NEW_UPDATES)
def update_update(conn: Connection, job: Job, options: dict[str, Any]) -> bool:
    return _run_update(conn, job, options)


@api("update.run", Param("attrs", (dict,), {}), job=True, lock=lambda *_: "update", since=NEW_UPDATES)
def update_run(conn: Connection, job: Job, options: dict[str, Any]) -> bool:
    return _run_update(conn, job, options)


@api("update.config", since=NEW_UPDATES)
def update_config(conn: Connection) -> dict[str, Any]:
    return {"id": 1, **conn.host.data.update_config}


@api("update.update", Param("data", (dict,)), since=NEW_UPDATES)
def update_configure(conn: Connection, data: dict[str, Any]) -> dict[str, Any]:
    extra = [key for key in data if key not in UPDATE_CONFIG_FIELDS]
    if extra:  # pydantic's answer to keys the model does not have (api/base/handler/accept.py)
        raise ValidationErrors([(f"data.{key}", "Extra inputs are not permitted", errno.EINVAL) for key in extra])
    conn.host.data.update_config.update(data)
    return {"id": 1, **conn.host.data.update_config}


@api("update.status", since=NEW_UPDATES)
def update_status(conn: Connection) -> dict[str, Any]:
    """Errors come back as code ERROR, not raised (status_internal without propagate_exception)."""
    try:
        conn.host.check_update_allowed()
    except CallError as exc:
        return {"code": "ERROR", "status": None, "update_download_progress": None,
                "error": {"errname": errname(exc.errno), "reason": exc.errmsg}}
    current = {"train": "TrueNAS-" + conn.host.config.version.rpartition(".")[0], "profile": "GENERAL",
               "matches_profile": True}
    return {"code": "NORMAL", "status": {"current_version": current, "new_version": None},
            "error": None, "update_download_progress": None}
