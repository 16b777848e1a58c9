"""POST /_upload: a multipart body whose file parts are fed into a job's input pipes.

apps/file_app.py `FileApplication.upload` (main.py on 24.10; file_app.py from
25.04; the same order at TS-24.10.2, TS-25.04.2.6, TS-25.10.1 and
TS-26.0.0-BETA.2), with restful.py `parse_credentials` and `authenticate`
(file_app.py on 26.0):

- a body that is not multipart is an exception in aiohttp's reader: 500;
- no part at all: 405 "No part found on payload"; a first part not named
  `data`: 405; `data` that is not JSON: 400; JSON without "method": 422;
- credentials: `Authorization: Token T` (or `?auth_token=T`), `Bearer KEY`,
  `Basic`; none: 401. A token auth.get_token_for_action refuses (unknown,
  expired, from another origin, made with attributes such as core.download's)
  is 403 "Invalid token"; from 25.04 a single-use token is destroyed by this
  use. A wrong API key or password is 401; from 25.04 an API key above level 1
  is 403;
- a second part not named `file`: 405; an unknown method: 422 (CallError
  ENOMETHOD); a caller without the right: 403;
- the job starts, then the file part is copied into its input pipe; 25.10 and
  later take up to five `file` parts, one pipe each (a sixth: 405 "Too many
  uploaded files"); 24.10 and 25.04 read the first and ignore the rest;
- 200 `{"job_id": N}` once the file is in the pipe: the job may still be running.

nginx passes /_upload with `client_max_body_size 0` and no buffering
(nginx.conf.mako), so no size gets 413 here: a limit is the job's own (10 MiB
for config.upload). While the middleware is down nginx answers 502.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .api_files import Pipe, files_of
from .api_upload import with_inputs
from .auth_levels import assurance_level
from .auth_session import Credential
from .connection import Connection
from .failures import ENOMETHOD, CallError, ValidationErrors
from .multipart import MultipartError, MultipartStream, Part, boundary_of
from .registry import lookup

if TYPE_CHECKING:
    from .host import SimHost

StartResponse = Callable[..., Any]
MAX_FILES = 5  # file_app.py MAX_UPLOADED_FILES (25.10 and later)
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 405: "Method Not Allowed",
            412: "Precondition Failed", 422: "Unprocessable Entity", 500: "Internal Server Error",
            502: "Bad Gateway"}


class Refused(Exception):
    """An answer other than 200: aiohttp's web.Response(status=..., body=...)."""

    def __init__(self, status: int, body: str = "") -> None:
        super().__init__(status, body)
        self.status, self.body = status, body


def _http_error(status: int) -> Refused:
    """web.HTTPUnauthorized() / HTTPForbidden() with no text: the body is "<status>: <reason>"."""
    return Refused(status, f"{status}: {_REASONS[status]}")


def serve_upload(host: SimHost, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    if not host.middleware_up.is_set():
        return _answer(start_response, 502, "")
    try:
        job_id = _upload(host, environ)
    except Refused as refusal:
        return _answer(start_response, refusal.status, refusal.body)
    except MultipartError:
        return _answer(start_response, 500, "500 Internal Server Error\n\nServer got itself in trouble")
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"job_id": job_id}).encode()]


def _answer(start_response: StartResponse, status: int, body: str) -> list[bytes]:
    data = body.encode()
    start_response(f"{status} {_REASONS[status]}", [("Content-Type", "text/plain; charset=utf-8"),
                                                    ("Content-Length", str(len(data)))])
    return [data]


def _upload(host: SimHost, environ: dict[str, Any]) -> int:
    stream = MultipartStream(environ["wsgi.input"].read, boundary_of(environ.get("CONTENT_TYPE", "")))
    part = stream.next_part()
    if part is None:
        raise Refused(405, "No part found on payload")
    if part.name != "data":
        raise Refused(405, '"data" part must be the first on payload')
    try:
        data = json.loads(part.read())
    except ValueError as exc:
        raise Refused(400, str(exc)) from None
    if not isinstance(data, dict) or "method" not in data:
        raise Refused(422)
    caller = _authenticate(host, environ)
    file_part = stream.next_part()
    if file_part is None or file_part.name != "file":
        raise Refused(405, '"file" not found as second part on payload')
    method = lookup(str(data["method"]), host.config.version_info)
    if method is None:
        service, _, name = str(data["method"]).rpartition(".")
        raise Refused(422, str(CallError(f"Method {name!r} not found in {service!r}", ENOMETHOD)))
    if not caller.full_admin():
        raise _http_error(403)
    params = data.get("params") or []
    if not method.job:  # call_with_audit returned a plain result, and `job.pipes` fails on it
        result = method.func(caller, *method.bind(list(params)))
        raise Refused(500, f"'{type(result).__name__}' object has no attribute 'pipes'")
    return _feed_job(host, caller, method, list(params), stream, file_part)


def _feed_job(host: SimHost, caller: Connection, method: Any, params: list[Any], stream: MultipartStream,
              file_part: Part) -> int:
    several = host.config.version_info >= (25, 10)
    pipes = [Pipe(buffered=False)]
    try:
        bound = method.bind(params)
    except ValidationErrors as exc:  # the job's own argument check fails the job, not the request
        failure = exc
        job = caller.submit_job(replace(method, func=lambda *_args, **_kw: _raise(failure)), [])
    else:
        job = caller.submit_job(replace(method, func=with_inputs(method.func, pipes)), bound)
    files_of(host).uploads += 1
    _copy(host, file_part, pipes[0])
    if several:
        for _ in range(MAX_FILES - 1):
            extra = stream.next_part()
            if extra is None:
                break
            if extra.name != "file":
                raise Refused(405, f"Unknown payload part {extra.name!r}")
            pipes.append(Pipe(buffered=False))
            _copy(host, extra, pipes[-1])
        if stream.next_part() is not None:
            raise Refused(405, "Too many uploaded files")
    return job.id


def _raise(error: Exception) -> None:
    raise error


def hold_uploads(host: SimHost, after: int | None) -> None:
    """With a byte count, every upload to `host` pauses after that many bytes of its file; None releases."""
    files = files_of(host)
    files.upload_hold_after = after
    files.upload_held.clear()
    (files.upload_released.clear if after is not None else files.upload_released.set)()


def _copy(host: SimHost, part: Part, pipe: Pipe) -> None:
    """copy_multipart_to_pipe: chunk by chunk; a job that stopped reading (EPIPE) ends it quietly.

    A client gone mid-file ends the part early (MultipartError): the pipe is closed all
    the same, so the job reads a truncated file and fails on it.
    """
    files, copied = files_of(host), 0
    try:
        try:
            while piece := part.read_chunk():
                pipe.write(piece)
                copied += len(piece)
                if files.upload_hold_after is not None and copied >= files.upload_hold_after:
                    files.upload_held.set()
                    files.upload_released.wait()
        finally:
            pipe.finish()
    except BrokenPipeError:
        part.drain()


def _authenticate(host: SimHost, environ: dict[str, Any]) -> Connection:
    """parse_credentials + authenticate: a caller logged in as the credential's user, or a refusal."""
    caller = Connection(host, None, environ)
    header = environ.get("HTTP_AUTHORIZATION")
    newer = host.config.version_info >= (25, 4)
    level = assurance_level(host.config)
    if header is None:
        values = parse_qs(environ.get("QUERY_STRING", "")).get("auth_token")
        if not values:
            raise _http_error(401)
        header = f"Token {values[0]}"
    if header.startswith("Token "):
        token = host.tokens.get(header.split(" ", 1)[1], caller.origin)
        if token is None or token.attributes:
            raise Refused(403, "Invalid token")
        if newer and token.single_use:
            host.tokens.destroy(token)
        elif newer and level.name != "LEVEL_1":
            raise Refused(403, "Multi-use API tokens are not supported at the current security level")
        username, kind = token.root.username, "TOKEN"
    elif header.startswith("Basic "):
        try:
            username, password = base64.b64decode(header[6:]).decode().split(":", 1)
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _http_error(400) from None
        if host.config.users.get(username) != password:
            raise Refused(401, "Bad username or password")
        kind = "LOGIN_PASSWORD"
    elif header.startswith("Bearer "):
        if newer and level.name != "LEVEL_1":
            raise Refused(403, "API key authentication is not permitted by server authentication security level")
        key = header.split(" ", 1)[1]
        owner = host.config.api_keys.get(key)
        if owner is None or key in host.revoked_keys:
            raise Refused(401, "Invalid API key")
        username, kind = owner, "API_KEY"
    else:
        raise _http_error(401)
    caller.login(Credential(username, kind, level, host.clock.now()))
    return caller
