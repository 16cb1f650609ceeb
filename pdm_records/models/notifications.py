"""The per-user outbox of notifications (shown in the UI; e-mail delivery can read it later)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base


class Notification(Base):
    __tablename__ = "notification"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(sa.ForeignKey("case.id"), default=None)
    message: Mapped[str] = mapped_column(sa.String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when a delivery channel (e-mail, later) has sent it.
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
