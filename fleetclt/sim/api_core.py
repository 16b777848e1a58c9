"""core.*, system.* and failover.* methods of the simulator (auth.* are in api_auth.py).

Every method takes the calling Connection first; job methods then take the Job.
Behaviour and result shapes follow docs/protocol.md §4, §7 and §11.
"""
from __future__ import annotations

import datetime as dt
import errno
import hashlib
import uuid
from typing import TYPE_CHECKING, Any

from .failures import CallError, InstanceNotFound, ValidationErrors
from .jobs import Job
from .query import filter_list
from .registry import Param, api, lookup

if TYPE_CHECKING:
    from .connection import Connection
    from .host import SimHost

NO_AUTH = {"auth_required": False}


# -- core -----------------------------------------------------------------
@api("core.set_options", Param("options", (dict,), {}), auth_required=False, rate_limit=False)
def set_options(conn: Connection, options: dict[str, Any]) -> dict[str, Any] | None:
    allowed = ("legacy_jobs", "private_methods", "py_exceptions")
    errors = [(f"options.{k}", "Input should be a valid boolean", errno.EINVAL)
              for k in allowed if k in options and not isinstance(options[k], bool)]
    if errors:
        raise ValidationErrors(errors)
    if not conn.host.config.new_style_jobs:
        return None  # 25.04: no legacy_jobs option and a null result
    if "legacy_jobs" in options:
        conn.legacy_jobs = options["legacy_jobs"]
    return {"legacy_jobs": conn.legacy_jobs, "private_methods": bool(options.get("private_methods")),
            "py_exceptions": bool(options.get("py_exceptions"))}


@api("core.ping", **NO_AUTH)
def ping(conn: Connection) -> str:
    return "pong"


@api("core.subscribe", Param("event", (str,)))
def subscribe(conn: Connection, event: str) -> str:
    """core_service.py subscribe: any name a full admin may see, registered or not; sources start here."""
    if not conn.can_subscribe(event):
        raise CallError("Not authorized", errno.EACCES)
    sub_id = str(uuid.uuid4())
    if conn.host.sources.is_source(event):
        conn.host.sources.subscribe(conn, sub_id, event)
    else:
        conn.subscriptions[sub_id] = event
    return sub_id


@api("core.unsubscribe", Param("id", (str,)))
def unsubscribe(conn: Connection, sub_id: str) -> None:
    if conn.subscriptions.pop(sub_id, None) is None:
        conn.host.sources.unsubscribe(sub_id)


def _job_dicts(conn: Connection, raw_result: bool) -> list[dict[str, Any]]:
    with_ids = conn.host.config.new_style_jobs
    return [job.encode(with_ids, raw_result) for job in conn.host.engine.jobs.values()]


@api("core.get_jobs", Param("filters", (list,), []), Param("options", (dict,), {}))
def get_jobs(conn: Connection, filters: list[Any], options: dict[str, Any]) -> Any:
    """core_service.py: results redacted for a client unless `options.extra.raw_result`; the
    filters go to the pure-Python filter_list, where a `$date` value fails against the naive job
    times with TypeError on every version simulated (24.10 to 26.0)."""
    raw_result = bool((options.get("extra") or {}).get("raw_result", False))
    return filter_list(_job_dicts(conn, raw_result), filters, options)


def _job(conn: Connection, job_id: int) -> Job:
    """core_service.py `__job_by_credential_and_id`: `jobs[id]` (a KeyError, whose text is the id)
    up to 25.04; InstanceNotFound from 25.10."""
    job = conn.host.engine.jobs.get(job_id)
    if job is None:
        if conn.host.config.version_info < (25, 10):
            raise KeyError(job_id)
        raise InstanceNotFound(f"Job with id {job_id} does not exist")
    return job


@api("core.job_abort", Param("id", (int,)))
def job_abort(conn: Connection, job_id: int) -> None:
    conn.host.engine.abort(_job(conn, job_id))


def _mirror(conn: Connection, target: Job, job: Job) -> Any:
    """job.py `wrap`: follow another job's progress, then `wait(raise_error=True)`: an aborted
    target has no error, so the wait returns its (null) result; a failure is raised as it is
    if a CallError (or, from 26.0, ValidationErrors), else as CallError(error)."""
    while not target.finished.wait(timeout=0.05):
        job.set_progress(target.progress["percent"], target.progress["description"])
    failure = target.failure
    if failure is None:
        return target.result
    forwarded = (CallError, ValidationErrors) if conn.host.config.version_info >= (26,) else (CallError,)
    if isinstance(failure, forwarded):
        raise failure
    raise CallError(target.error or "")


@api("core.job_wait", Param("id", (int,)), job=True)
def job_wait(conn: Connection, job: Job, job_id: int) -> Any:
    return _mirror(conn, _job(conn, job_id), job)


def _bulk_item(conn: Connection, method: str, params: Any) -> dict[str, Any]:
    try:
        target = lookup(method, conn.host.config.version_info)
        if target is None:
            raise CallError(f"Method {method!r} not found", 201)
        args = target.bind(params)
        if not target.job:
            return {"job_id": None, "result": target.func(conn, *args), "error": None}
        sub = conn.submit_job(target, args)
        sub.finished.wait()
        error = sub.error or ("Job was aborted" if sub.state == "ABORTED" else None)
        return {"job_id": sub.id, "result": sub.result, "error": error}
    except (CallError, ValidationErrors) as exc:
        return {"job_id": None, "result": None, "error": str(exc)}


@api("core.bulk", Param("method", (str,)), Param("params", (list,)), Param("description", (str, type(None)), None),
     job=True, lock=lambda method, *_: f"bulk:{method}")
def bulk(conn: Connection, job: Job, method: str, params: list[Any], description: str | None) -> list[Any]:
    if lookup(method, conn.host.config.version_info) is None:
        raise CallError(f"Method {method!r} not found", 201)
    results = []
    for index, item in enumerate(params):
        job.set_progress(100 * index // max(1, len(params)), description or f"{method} {index + 1}/{len(params)}")
        results.append(_bulk_item(conn, method, item if isinstance(item, list) else [item]))
    return results


# -- system -------------------------------------------------------------------
@api("system.info")
def system_info(conn: Connection) -> dict[str, Any]:
    host = conn.host
    uptime = max(0.0, host.clock.wall() - host.booted_at)
    return {
        "version": _full_version(conn) if host.config.legacy_only else host.config.version,
        "buildtime": _dt(1_760_000_000.0),
        "hostname": host.name, "physmem": 68_719_476_736, "model": "Intel(R) Xeon(R) Silver 4314 CPU @ 2.40GHz",
        "cores": 16, "physical_cores": 8, "loadavg": [0.12, 0.2, 0.18],
        "uptime": _uptime_text(uptime), "uptime_seconds": uptime,
        "system_serial": hashlib.sha256(host.name.encode()).hexdigest()[:10].upper(),
        "system_product": "TRUENAS-M50", "system_product_version": "1.0", "license": None,
        "boottime": _dt(host.booted_at), "datetime": host.utcnow(), "timezone": "UTC",
        "system_manufacturer": "iXsystems", "ecc_memory": True,
    }


def _dt(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc)


def _uptime_text(seconds: float) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    prefix = f"{int(days)} days, " if days else ""
    return f"{prefix}{int(hours)}:{int(minutes):02d}:{secs:09.6f}"


def _full_version(conn: Connection) -> str:
    """sw_info()['fullname'] (utils/__init__.py): BRAND_PRODUCT was TrueNAS-SCALE up to 24.10."""
    product = "TrueNAS-SCALE" if conn.host.config.legacy_only else "TrueNAS"
    return f"{product}-{conn.host.config.version}"


@api("system.version")
def system_version(conn: Connection) -> str:
    return _full_version(conn)


@api("system.version_short")
def system_version_short(conn: Connection) -> str:
    return conn.host.config.version


@api("system.ready")
def system_ready(conn: Connection) -> bool:
    return not conn.host.faults.not_ready


@api("system.state")
def system_state(conn: Connection) -> str:
    return "READY"


@api("system.boot_id", **NO_AUTH)
def system_boot_id(conn: Connection) -> str:
    return conn.host.boot_id


@api("system.host_id")
def system_host_id(conn: Connection) -> str:
    return hashlib.sha256(conn.host.name.encode()).hexdigest()


# -- failover (plugins/failover.py) ------------------------------------------------
def ui_urls(host: SimHost) -> list[str]:
    """system.general.get_ui_urls: http://ADDRESS[:PORT] (and https:// with a certificate)."""
    scheme = "https" if host.config.certfile else "http"
    port = "" if host.port == (443 if scheme == "https" else 80) else f":{host.port}"
    return [f"{scheme}://{host.address}{port}"]


@api("failover.licensed")
def failover_licensed(conn: Connection) -> bool:
    return conn.host.peer is not None


@api("failover.status")
def failover_status(conn: Connection) -> str:
    """MASTER or BACKUP on one of an HA pair, SINGLE on a host without the HA license."""
    return conn.host.failover_role


@api("failover.disabled.reasons")
def failover_disabled_reasons(conn: Connection) -> list[str]:
    """Why failover cannot happen now; NO_PONG when the peer does not answer (failover_/disabled_reasons.py)."""
    peer = conn.host.peer
    return ["NO_PONG"] if peer is not None and not peer.online else []


@api("failover.get_ips")
def failover_get_ips(conn: Connection) -> list[str]:
    return ui_urls(conn.host)
