"""The object-store interface every backend implements (local write-once folder, S3 Object Lock).

Contract, for every backend:
- ``put`` never overwrites: a key is written once; a second put of the same key raises
  :class:`ObjectExists`. The object carries a retain-until date and an optional legal hold.
- ``read`` verifies the SHA-256 the caller expects and raises :class:`ObjectCorrupted` on mismatch.
- retention is only ever extended (:class:`RetentionViolation` on an attempt to shorten);
  ``delete`` is refused before retain-until and while a legal hold is on.
- errors are this module's exceptions only: callers never see botocore or OSError.
This module is pure Python: no Flask, no database.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

KEY_PATTERN = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127}){0,15}$"
)
MAX_KEY_LENGTH = 512


class StorageError(Exception):
    """Base of every storage error."""


class StorageUnavailable(StorageError):
    """The store cannot be reached or written right now; nothing was stored."""


class InvalidKey(StorageError):
    """The key is not a safe object key (traversal, absolute path, odd characters)."""


class ObjectExists(StorageError):
    """A put would overwrite an existing object."""


class ObjectNotFound(StorageError):
    """No object (or no such version) under that key."""


class ObjectCorrupted(StorageError):
    """The stored content does not match its recorded SHA-256."""


class RetentionViolation(StorageError):
    """Deleting before retain-until, under legal hold, or shortening retention was refused."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    version_id: str | None
    size: int
    sha256: str | None
    retain_until: datetime | None
    legal_hold: bool
    lock_mode: str | None


def validate_key(key: str) -> str:
    """Return ``key`` if it is safe, else raise :class:`InvalidKey`.

    Safe keys are relative, ``/``-separated segments of letters, digits, ``.``, ``_`` and ``-``,
    each starting with a letter or digit (so no ``..``, no hidden files, no absolute paths).
    """
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH or not KEY_PATTERN.fullmatch(key):
        raise InvalidKey(f"unsafe object key {key!r}")
    return key


class ObjectStore(ABC):
    """A write-once object store with retention and legal hold."""

    name: str
    # The lock mode every record object must carry in this store ("LOCAL" for the folder store,
    # "COMPLIANCE" or "GOVERNANCE" on S3): reconciliation reports a weaker one.
    lock_mode: str

    @abstractmethod
    def put(
        self,
        key: str,
        source: Path,
        *,
        sha256: str,
        size: int,
        media_type: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        """Store the file at ``source`` under ``key`` once; return its info (with version id)."""

    @abstractmethod
    def read(self, key: str, *, version_id: str | None, sha256: str) -> bytes:
        """Return the content, verified against ``sha256``."""

    @abstractmethod
    def copy_to(self, key: str, dest: BinaryIO, *, version_id: str | None, sha256: str) -> int:
        """Stream the content into ``dest``; verify ``sha256`` at the end; return the size."""

    @abstractmethod
    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """Return what the store itself records about the object."""

    @abstractmethod
    def extend_retention(self, key: str, *, version_id: str | None, retain_until: datetime) -> None:
        """Move retain-until later; an earlier date raises :class:`RetentionViolation`."""

    @abstractmethod
    def set_legal_hold(self, key: str, *, version_id: str | None, on: bool) -> None:
        """Place or release a legal hold."""

    @abstractmethod
    def delete(self, key: str, *, version_id: str | None, now: datetime) -> None:
        """Delete one version; refused before retain-until or under legal hold."""

    @abstractmethod
    def quarantine(
        self, key: str, *, version_id: str | None, reason: str, found_at: datetime,
        retain_until: datetime | None,
    ) -> ObjectInfo:
        """Mark an object nobody indexes as quarantined, in the store itself, and keep it.

        The mark (S3: object tags ``pdm-quarantine``/``pdm-found-at``; local: the metadata
        file) says why and since when. With ``retain_until`` the object's retention is extended
        to at least that date (never shortened) so that an orphaned record stays protected.
        Returns what the store records afterwards.
        """

    @abstractmethod
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield every key under ``prefix`` (for reconciliation), also half-written ones."""

    @abstractmethod
    def check(self) -> list[str]:
        """Return problems that keep the store from working (empty list when healthy)."""
