"""What reconciliation found between the database and the object store (``pdm reconcile``).

``quarantined_object``: objects in the store that no row indexes (orphans), kept and listed so that
no object exists that nobody can find. ``damaged_record``: rows whose object is missing or does
not match its SHA-256/size; a ``stored_file`` row is also set to state DAMAGED.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base


class QuarantinedObject(Base):
    __tablename__ = "quarantined_object"
    __table_args__ = (sa.UniqueConstraint("backend", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    backend: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(512))
    version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    size: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    lock_mode: Mapped[str | None] = mapped_column(sa.String(16), default=None)
    retain_until: Mapped[datetime | None] = mapped_column(default=None)
    found_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    reason: Mapped[str] = mapped_column(sa.String(500))


class DamagedRecord(Base):
    __tablename__ = "damaged_record"
    __table_args__ = (sa.UniqueConstraint("row_type", "row_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    row_type: Mapped[str] = mapped_column(sa.String(32))  # stored_file, signature, …
    row_id: Mapped[int]
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True,
                                                default=None)
    backend: Mapped[str] = mapped_column(sa.String(16))
    key: Mapped[str] = mapped_column(sa.String(512))
    version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    problem: Mapped[str] = mapped_column(sa.String(16))  # missing | altered
    reason: Mapped[str] = mapped_column(sa.String(500))
    found_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
