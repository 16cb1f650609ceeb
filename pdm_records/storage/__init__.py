"""Object storage: the interface, its backends, and the factory that picks one from config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from .s3 import S3ObjectLockStore


def make_store(config: Mapping[str, Any]) -> ObjectStore:
    """Build the configured backend (``PDM_STORAGE_BACKEND``: ``local`` or ``s3``).

    For ``s3`` the endpoint is ``PDM_S3_ENDPOINT_URL``, else the ``AWS_ENDPOINT_URL`` environment
    variable, else AWS itself; credentials come from the standard AWS chain. Building the store
    does not contact the server (``store.check()`` does).
    """
    backend = config.get("PDM_STORAGE_BACKEND", "local")
    if backend == "local":
        return LocalWriteOnceStore(config["PDM_STORAGE_PATH"])
    if backend == "s3":
        return make_s3_store(config)
    raise StorageUnavailable(
        f"storage backend {backend!r} is unknown; use PDM_STORAGE_BACKEND=local or s3"
    )


def make_s3_store(config: Mapping[str, Any]) -> S3ObjectLockStore:
    """Build the S3 Object Lock store from ``PDM_S3_*`` settings (see :func:`make_store`)."""
    from .s3 import S3ObjectLockStore  # boto3 is imported only when S3 is configured

    bucket = config.get("PDM_S3_BUCKET")
    if not bucket:
        raise StorageUnavailable("PDM_STORAGE_BACKEND=s3 needs PDM_S3_BUCKET")
    return S3ObjectLockStore(
        bucket=bucket,
        endpoint_url=config.get("PDM_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL"),
        region=config.get("PDM_S3_REGION"),
        lock_mode=config.get("PDM_S3_LOCK_MODE") or "COMPLIANCE",
        sse=config.get("PDM_S3_SSE"),
        governance_bypass=bool(config.get("PDM_S3_GOVERNANCE_BYPASS")),
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
    "make_s3_store",
    "make_store",
    "validate_key",
]
