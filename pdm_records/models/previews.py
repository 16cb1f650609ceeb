"""Derived 3D previews of design iterations (not records).

A preview is a compact GLB made from the stored mesh of a verified design iteration, coloured by
wall thickness, plus its JSON legend. It is a cache: it can be rebuilt at any time from the mesh
and the verification report (same inputs, same bytes), so it carries no retention, no signature
and no audit event, and it lives in the database rather than the write-once record store.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType


class DesignPreview(Base):
    """The preview built for one verification report of one design iteration."""

    __tablename__ = "design_preview"

    id: Mapped[int] = mapped_column(primary_key=True)
    iteration_id: Mapped[int] = mapped_column(sa.ForeignKey("design_iteration.id"), index=True)
    report_id: Mapped[int] = mapped_column(sa.ForeignKey("verification_report.id"), unique=True)
    # The geometry.preview format the bytes were built with; another format is rebuilt.
    format: Mapped[str] = mapped_column(sa.String(32))
    glb: Mapped[bytes] = mapped_column(sa.LargeBinary)
    glb_sha256: Mapped[str] = mapped_column(sa.String(64))
    legend: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
