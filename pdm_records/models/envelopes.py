"""Design envelopes as controlled, versioned documents, and verification reports
(FDA AM guidance §V.B; IMDRF N58; DOMAIN.md §4)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType, enum_column


class EnvelopeStatus(StrEnum):
    DRAFT = "draft"
    APPROVED = "approved"
    SUPERSEDED = "superseded"


class EnvelopeVersion(Base):
    """One version of a device type's envelope: drafted, approved with a quality signature by
    someone other than its author, then immutable; a change is a new version."""

    __tablename__ = "envelope_version"
    __table_args__ = (sa.UniqueConstraint("device_type_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    device_type_id: Mapped[int] = mapped_column(sa.ForeignKey("device_type.id"), index=True)
    version: Mapped[int]
    status: Mapped[EnvelopeStatus] = mapped_column(enum_column(EnvelopeStatus))
    definition: Mapped[dict[str, Any]] = mapped_column(JSONType)
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    content_sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    approved_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), default=None)
    approved_at: Mapped[datetime | None] = mapped_column(default=None)
    signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signature.id"),
                                                     default=None)


class VerificationReport(Base):
    """The result of verifying one design iteration against one approved envelope version."""

    __tablename__ = "verification_report"
    # Search by envelope version: EXISTS over (envelope_version_id, case_id).
    __table_args__ = (sa.Index("ix_verification_report_envelope_case", "envelope_version_id",
                               "case_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    iteration_id: Mapped[int] = mapped_column(sa.ForeignKey("design_iteration.id"), index=True)
    envelope_version_id: Mapped[int] = mapped_column(sa.ForeignKey("envelope_version.id"))
    envelope_sha256: Mapped[str] = mapped_column(sa.String(64))
    mesh_sha256: Mapped[str] = mapped_column(sa.String(64))
    passed: Mapped[bool]
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)
    report_sha256: Mapped[str] = mapped_column(sa.String(64))
    record_key: Mapped[str] = mapped_column(sa.String(512))
    record_version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
