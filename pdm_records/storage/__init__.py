"""Object storage: the interface, its backends, and the factory that picks one from config."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import (
    InvalidKey,
    ObjectCorrupted,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RetentionViolation,
    StorageError,
    StorageUnavailable,
    validate_key,
)
from .local import LocalWriteOnceStore


def make_store(config: Mapping[str, Any]) -> ObjectStore:
    """Build the configured backend (``PDM_STORAGE_BACKEND``)."""
    backend = config.get("PDM_STORAGE_BACKEND", "local")
    if backend == "local":
        return LocalWriteOnceStore(config["PDM_STORAGE_PATH"])
    raise StorageUnavailable(
        f"storage backend {backend!r} is not available in this version "
        "(the S3 Object Lock backend is being built); use PDM_STORAGE_BACKEND=local"
    )


__all__ = [
    "InvalidKey",
    "LocalWriteOnceStore",
    "ObjectCorrupted",
    "ObjectExists",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStore",
    "RetentionViolation",
    "StorageError",
    "StorageUnavailable",
    "make_store",
    "validate_key",
]
