"""Background jobs: their state lives in the database (a distributed queue can replace the
runner later; the table and the claim protocol stay)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType, enum_column


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Job(Base):
    __tablename__ = "job"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[JobStatus] = mapped_column(enum_column(JobStatus), index=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True,
                                                default=None)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=2)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    progress: Mapped[str] = mapped_column(sa.String(200), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[str | None] = mapped_column(sa.Text, default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
