"""Electronic signatures (21 CFR Part 11 §11.50 manifestation, §11.70 linking)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType, enum_column


class SignatureMeaning(StrEnum):
    """What a signature means (Part 11 §11.50(a)(3))."""

    AUTHORED = "authored"
    REVIEWED = "reviewed"
    VERIFIED = "verified"
    APPROVED = "approved"
    RELEASED = "released"
    LEGAL_HOLD = "legal_hold"
    HOLD_RELEASED = "hold_released"
    DISPOSAL = "disposal"
    ENVELOPE_APPROVAL = "envelope_approval"


class Signature(Base):
    """A signature bound to the SHA-256 of the canonical content of one record version.

    ``content_sha256`` is the hash of the signed record (including its files' SHA-256);
    ``binding_sha256`` hashes the manifestation (signer, printed name, time, meaning) together
    with the record's type, id and content hash, so the signature cannot be moved to another
    record. The signed content is also stored as canonical JSON in the object store
    (``record_key``/``record_version_id``): the record of truth; this row is its index.
    """

    __tablename__ = "signature"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True,
                                                default=None)
    target_type: Mapped[str] = mapped_column(sa.String(64))
    target_id: Mapped[int]
    meaning: Mapped[SignatureMeaning] = mapped_column(enum_column(SignatureMeaning))
    signer_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    printed_name: Mapped[str] = mapped_column(sa.String(200))
    signer_email: Mapped[str] = mapped_column(sa.String(255))
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    content_sha256: Mapped[str] = mapped_column(sa.String(64))
    binding_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    # The exact canonical content that was signed (parties, names and file hashes as they were
    # at signing), so later renames do not change what the signature means.
    signed_record: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    record_key: Mapped[str] = mapped_column(sa.String(512))
    record_version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
