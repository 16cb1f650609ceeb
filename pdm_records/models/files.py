"""The index row of an object in the write-once store (backend, key, version, hash, retention)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, enum_column


class FileState(StrEnum):
    DRAFT = "draft"  # uploaded to a draft request: short retention floor, removable
    RECORD = "record"  # frozen by a signature: an immutable record object
    QUARANTINED = "quarantined"
    DAMAGED = "damaged"
    DISPOSED = "disposed"


class StoredFile(Base):
    __tablename__ = "stored_file"
    __table_args__ = (
        sa.UniqueConstraint("backend", "key"),
        # "Cases on hold" in search: a small partial index over the held objects only.
        sa.Index("ix_stored_file_held_case_id", "case_id", postgresql_where=sa.text("legal_hold"),
                 sqlite_where=sa.text("legal_hold")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True, default=None)
    backend: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(512))
    version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    media_type: Mapped[str] = mapped_column(sa.String(127))
    original_name: Mapped[str] = mapped_column(sa.String(255))
    state: Mapped[FileState] = mapped_column(enum_column(FileState), default=FileState.DRAFT)
    retain_until: Mapped[datetime]
    legal_hold: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), default=None)
