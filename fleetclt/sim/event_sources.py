"""Event sources: subscriptions with an argument that make their own events and can end.

Modelled on middlewared's EventSourceManager (common/event_source/manager.py)
and EventSource (event.py):

- `core.subscribe("name:arg")` on a source validates the argument first. An
  invalid one ends that subscription with the validation error at once, before
  core.subscribe answers, and core.subscribe still answers with an id
  (manager.py `subscribe`).
- One instance per name and argument, shared by its subscribers. When its run
  ends, cleanly or with an error, every subscriber gets notify_unsubscribed
  with error null or the error (event.py `process`, manager.py `_unsubscribe_all`).
- core.unsubscribe ends one subscription with error null; the last one leaving
  cancels the instance. A closed connection's subscriptions go without a notice.

The one source here is filesystem.file_tail_follow (plugins/filesystem.py
FileFollowTailEventSource) over the host's `files`: the last `tail_lines`
lines, then whatever is appended; a path that does not exist ends it at once,
cleanly. `end()` ends a source the way a failing run() does.
"""
from __future__ import annotations

import errno
import json
from typing import TYPE_CHECKING, Any

import gevent

from .failures import ValidationErrors

if TYPE_CHECKING:
    from .connection import Connection
    from .host import SimHost

TAIL_FOLLOW = "filesystem.file_tail_follow"
SOURCES = frozenset({TAIL_FOLLOW})


class _Instance:
    """One running source: its full name, the file it follows, and who listens."""

    def __init__(self, name: str, path: str) -> None:
        self.name, self.path = name, path
        self.subscribers: dict[str, Connection] = {}


class EventSources:
    """The host's running event sources and the files they can follow."""

    def __init__(self, host: SimHost) -> None:
        self.host = host
        self.files: dict[str, str] = {"/var/log/middlewared.log": "middlewared started\nready\n"}
        self._instances: dict[str, _Instance] = {}

    @staticmethod
    def is_source(name: str) -> bool:
        return name.split(":", 1)[0] in SOURCES

    def subscribe(self, conn: Connection, ident: str, name: str) -> None:
        """What core.subscribe does for a source before it answers with `ident`."""
        try:
            path, lines = _tail_args(name.partition(":")[2])
        except ValidationErrors as exc:
            conn.send_unsubscribed(name, exc)
            return
        instance = self._instances.get(name)
        if instance is not None:
            instance.subscribers[ident] = conn
            return
        instance = self._instances[name] = _Instance(name, path)
        instance.subscribers[ident] = conn
        gevent.spawn(self._start, instance, lines)  # process() runs as its own task

    def _start(self, instance: _Instance, lines: int) -> None:
        text = self.files.get(instance.path)
        if text is None:  # "if not os.path.exists(path): return": run() ends, no error
            self._finish(instance, None)
            return
        self._send(instance, "".join(text.splitlines(keepends=True)[-lines:]))

    def unsubscribe(self, ident: str) -> None:
        """core.unsubscribe of a source subscription: notice with error null."""
        for instance in list(self._instances.values()):
            conn = instance.subscribers.pop(ident, None)
            if conn is not None:
                conn.send_unsubscribed(instance.name, None)
                self._cancel_if_unused(instance)

    def drop(self, conn: Connection) -> None:
        """The connection closed: its subscriptions go, with no notice."""
        self._remove(conn, notify=False)

    def logout(self, conn: Connection) -> None:
        """auth.logout ends the connection's source subscriptions, each with a notice, error
        null (plugins/auth.py `logout` -> common/event_source/manager.py `unsubscribe_app`)."""
        self._remove(conn, notify=True)

    def _remove(self, conn: Connection, notify: bool) -> None:
        for instance in list(self._instances.values()):
            for ident in [i for i, c in instance.subscribers.items() if c is conn]:
                del instance.subscribers[ident]
                if notify:
                    conn.send_unsubscribed(instance.name, None)
            self._cancel_if_unused(instance)

    def append(self, path: str, text: str) -> None:
        """Write to a file; every source following it sends the new text."""
        self.files[path] = self.files.get(path, "") + text
        for instance in list(self._instances.values()):
            if instance.path == path:
                self._send(instance, text)

    def end(self, name: str, error: BaseException | None = None) -> None:
        """End a running source as its run() returning (None) or raising `error` does."""
        instance = self._instances.get(name)
        if instance is not None:
            self._finish(instance, error)

    def _finish(self, instance: _Instance, error: BaseException | None) -> None:
        self._instances.pop(instance.name, None)
        for conn in instance.subscribers.values():
            conn.send_unsubscribed(instance.name, error)
        instance.subscribers.clear()

    def _cancel_if_unused(self, instance: _Instance) -> None:
        if not instance.subscribers:
            self._instances.pop(instance.name, None)

    @staticmethod
    def _send(instance: _Instance, data: str) -> None:
        for conn in list(instance.subscribers.values()):
            conn.send_event("added", instance.name, None, {"data": data})


def _tail_args(arg: str) -> tuple[str, int]:
    """EventSource.validate_arg with FileFollowTailEventSourceArgs {path: str, tail_lines: int = 3}."""
    try:
        data: Any = json.loads(arg) if arg else {}
    except ValueError as exc:
        raise ValidationErrors.single("", str(exc)) from None
    if not isinstance(data, dict):
        raise ValidationErrors.single("", "Input should be a valid dictionary")
    problems: list[tuple[str | None, str, int]] = []
    if "path" not in data:
        problems.append(("path", "Field required", errno.EINVAL))
    elif not isinstance(data["path"], str):
        problems.append(("path", "Input should be a valid string", errno.EINVAL))
    lines = data.get("tail_lines", 3)
    if not isinstance(lines, int) or isinstance(lines, bool):
        problems.append(("tail_lines", "Input should be a valid integer", errno.EINVAL))
    if problems:
        raise ValidationErrors(problems)
    return data["path"], lines
