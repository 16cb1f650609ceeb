"""Canonical JSON and hashing: the one helper every hash in the product goes through.

Canonical form is RFC 8785 (JSON Canonicalization Scheme, JCS) as implemented by the ``rfc8785``
package. Timestamps are UTC ISO 8601 with microseconds and a ``Z`` suffix, e.g.
``2026-11-22T04:05:06.000007Z``, so that the same instant always hashes the same way.
Signatures (21 CFR Part 11 §11.70, linking) and the audit chain hash this form.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import rfc8785


def utc_iso(moment: datetime) -> str:
    """Return ``moment`` as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_canonical_value(value: Any) -> Any:
    """Convert a Python value into the JSON value it is hashed as."""
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return to_canonical_value(value.value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("canonical JSON object keys must be strings")
        return {k: to_canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_canonical_value(v) for v in value]
    if isinstance(value, bytes):
        raise TypeError("bytes are not canonical JSON; hash them and store the hex digest")
    if isinstance(value, float) and value != value:  # NaN
        raise TypeError("NaN is not representable in canonical JSON")
    return value


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``value``."""
    return rfc8785.dumps(to_canonical_value(value))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_sha256(value: Any) -> str:
    """SHA-256 (hex) of the canonical JSON of ``value``."""
    return sha256_hex(canonical_json(value))
