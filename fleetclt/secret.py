"""Credentials that cannot leak by accident: masked everywhere, read only when needed.

A ``Secret`` holds either a literal value, a reference to one (``{env: NAME}``,
``{file: PATH}``) or an encrypted one (an Ansible ``!vault`` value, with the function
that decrypts it). References are resolved by ``reveal()`` each time it is called,
so a rotated key file or a changed environment is picked up by the next login, and
an inventory can be loaded (for ``fleetclt hosts``) without any secret existing.
``repr()``/``str()`` show only where the value comes from; errors name the place
the reference was written (``Location``), never the value, and are raised with
``from None`` so no traceback carries a chained exception holding secret bytes.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from .errors import ConfigError, InventoryError

__all__ = ["Location", "Secret"]


@dataclass(frozen=True)
class Location:
    """Where a value was written, so every error can point the user at it."""

    path: str = ""
    line: int | None = None
    key: str = ""

    def error(self, message: str) -> ConfigError:
        """An InventoryError for this place, or a plain ConfigError for a secret given in code
        or on the command line (returned, so callers write ``raise``)."""
        if not self.path:
            return ConfigError(f"{self.key}: {message}" if self.key else message)
        return InventoryError(message, self.path, self.line, self.key)

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return ": ".join(part for part in (where, self.key) if part)


class Secret:
    """A credential whose value only ``reveal()`` returns."""

    __slots__ = ("_kind", "_ref", "_where", "_base_dir", "_decrypt")
    _kind: str
    _ref: str
    _where: Location
    _base_dir: str
    _decrypt: Callable[[str, Location], str] | None

    def __init__(self, value: str, *, where: Location = Location()) -> None:
        self._set("literal", value, where, "")

    @classmethod
    def env(cls, name: str, where: Location = Location()) -> Secret:
        """A value read from the environment variable ``name`` at reveal time."""
        return cls._reference("env", name, where, "")

    @classmethod
    def file(cls, path: str, where: Location = Location(), base_dir: str = "") -> Secret:
        """A value read from ``path`` (``~`` expanded, relative to ``base_dir``) at reveal time."""
        return cls._reference("file", path, where, base_dir)

    @classmethod
    def encrypted(cls, ciphertext: str, where: Location,
                  decrypt: Callable[[str, Location], str]) -> Secret:
        """A value stored encrypted (an Ansible ``!vault``): ``decrypt`` runs at reveal time and
        raises a ConfigError naming ``where`` when it cannot."""
        return cls._reference("vault", ciphertext, where, "", decrypt)

    @classmethod
    def _reference(cls, kind: str, ref: str, where: Location, base_dir: str,
                   decrypt: Callable[[str, Location], str] | None = None) -> Secret:
        secret = cls.__new__(cls)
        secret._set(kind, ref, where, base_dir, decrypt)
        return secret

    def _set(self, kind: str, ref: str, where: Location, base_dir: str,
             decrypt: Callable[[str, Location], str] | None = None) -> None:
        for name, value in zip(self.__slots__, (kind, ref, where, base_dir, decrypt), strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("Secret is immutable")

    @property
    def source(self) -> str:
        """Where the value comes from: ``env:NAME``, ``file:PATH``, ``vault`` or ``literal``."""
        return self._kind if self._kind in ("literal", "vault") else f"{self._kind}:{self._ref}"

    @property
    def where(self) -> Location:
        """The place in the inventory that wrote this secret."""
        return self._where

    def error(self, message: str) -> ConfigError:
        """An error about the value, naming where it was written and where it comes from."""
        origin = f" ({self.source})" if self._kind in ("env", "file") else ""
        return self._where.error(message + origin)

    def reveal(self) -> str:
        """The value, resolved now; raises InventoryError naming where it was referenced."""
        if self._kind == "env":
            return self._read_env()
        if self._kind == "file":
            return self._read_file()
        if self._decrypt is not None:
            return self._decrypt(self._ref, self._where)
        return self._ref

    def _read_env(self) -> str:
        value = os.environ.get(self._ref)
        if value is None:
            raise self._where.error(f"environment variable {self._ref} is not set")
        if not value:
            raise self._where.error(f"environment variable {self._ref} is empty")
        return value

    def _file_path(self) -> str:
        return os.path.join(self._base_dir, os.path.expanduser(self._ref))

    def _read_file(self) -> str:
        path = self._file_path()
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise self._where.error(f"cannot read secret file {path}: {exc.strerror}") from None
        try:
            self._check_mode(path, os.fstat(fd).st_mode)
            with open(fd, "rb", closefd=False) as fh:
                data = fh.read()
        finally:
            os.close(fd)
        return self._decode(path, data)

    def _check_mode(self, path: str, mode: int) -> None:
        """Refuse files others could read, as ssh does for private keys."""
        if not stat.S_ISREG(mode):
            raise self._where.error(f"secret file {path} is not a regular file")
        if mode & 0o077:
            raise self._where.error(
                f"secret file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )

    def _decode(self, path: str, data: bytes) -> str:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise self._where.error(f"secret file {path} is not valid UTF-8") from None
        text = text[:-2] if text.endswith("\r\n") else text.removesuffix("\n")
        if not text:
            raise self._where.error(f"secret file {path} is empty")
        return text

    def __repr__(self) -> str:
        return f"Secret('***', source={self.source!r})"

    def __str__(self) -> str:
        return f"*** ({self.source})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return (self._kind, self._ref, self._base_dir) == (other._kind, other._ref, other._base_dir)

    def __hash__(self) -> int:
        return hash((self._kind, self._ref, self._base_dir))
