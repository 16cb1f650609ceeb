"""Audit events (21 CFR Part 11 §11.10(e)): who did what, when, with before/after values.

Written by :func:`pdm_records.services.audit.record_event` in the same transaction as the change
it describes. The hash chain and the database triggers that forbid UPDATE/DELETE come with the
audit-trail issue; the columns here are what every event carries from day one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType


class AuditEvent(Base):
    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), default=None)
    # A snapshot of who the actor was ("Dr A. Example <a@example.org>"), kept even if renamed.
    actor_label: Mapped[str] = mapped_column(sa.String(300))
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(64))
    target_id: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), index=True, default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    remote_addr: Mapped[str | None] = mapped_column(sa.String(64), default=None)
