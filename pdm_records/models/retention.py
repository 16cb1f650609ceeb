"""Legal holds and disposal tombstones (DOMAIN.md §5).

A hold row is placed and released with a signature each; while any hold of a case is active, its
record objects carry an S3 legal hold and the case cannot be disposed. A tombstone is what a case
keeps after disposal: what was destroyed (key, version, SHA-256, size), who, when and why; its
canonical JSON is the signed record of the disposal signature, stored under ``tombstones/`` and
never disposed. ``disposal_item`` rows are marked one by one as objects are deleted, so an
interrupted disposal is visible and a re-run completes it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from .base import Base, enum_column


class LegalHold(Base):
    __tablename__ = "legal_hold"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    placed_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    placed_by_label: Mapped[str] = mapped_column(sa.String(300))
    placed_at: Mapped[datetime] = mapped_column(default=utcnow)
    placed_signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signature.id"),
                                                            default=None)
    released_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), default=None)
    released_by_label: Mapped[str | None] = mapped_column(sa.String(300), default=None)
    released_at: Mapped[datetime | None] = mapped_column(default=None)
    release_reason: Mapped[str | None] = mapped_column(sa.Text, default=None)
    released_signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signature.id"),
                                                              default=None)

    @property
    def active(self) -> bool:
        return self.released_at is None


class TombstoneState(StrEnum):
    PENDING = "pending"  # signed and written; deletions not all done yet (re-run completes)
    COMPLETE = "complete"


class Tombstone(Base):
    __tablename__ = "tombstone"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), unique=True)
    state: Mapped[TombstoneState] = mapped_column(enum_column(TombstoneState))
    reason: Mapped[str] = mapped_column(sa.Text)
    retain_until: Mapped[datetime]
    regime: Mapped[str] = mapped_column(sa.String(200))
    disposed_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    disposed_by_label: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signature.id"),
                                                     default=None)
    record_key: Mapped[str] = mapped_column(sa.String(512), default="")
    record_version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)

    items: Mapped[list[DisposalItem]] = relationship(order_by="DisposalItem.id")


class DisposalItem(Base):
    """One object a tombstone lists for deletion, marked when it is gone."""

    __tablename__ = "disposal_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    tombstone_id: Mapped[int] = mapped_column(sa.ForeignKey("tombstone.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))  # stored_file | signature | report
    source_id: Mapped[int]
    key: Mapped[str] = mapped_column(sa.String(512))
    version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(sa.String(32), default=None)  # deleted | absent
