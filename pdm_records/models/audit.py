"""Audit events (21 CFR Part 11 §11.10(e)): who did what, when, with before/after values.

Written by :func:`pdm_records.services.audit.record_event` in the same transaction as the change
it describes. Events form one global hash chain (``seq``, ``prev_hash``, ``hash``; the pure
computation is in :mod:`pdm_records.audit_chain`); appends are serialised by the single
``audit_chain_head`` row. The database refuses UPDATE and DELETE on ``audit_event`` and
``audit_checkpoint`` (triggers from migration 0007). Checkpoints of the chain head are kept in
write-once storage and indexed in ``audit_checkpoint``. See ``docs/audit-trail.md``.
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
    # The chain: 1-based and gap-free; the previous event's hash (64 zeros for the first); the
    # SHA-256 of audit_chain.event_content(...) of this row.
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditChainHead(Base):
    """The one row (id 1) holding the last event's seq and hash; locked by every append."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger)
    hash: Mapped[str] = mapped_column(sa.String(64))


class AuditCheckpoint(Base):
    """Index of a chain-head checkpoint written to write-once storage (object first, then row)."""

    __tablename__ = "audit_checkpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(sa.BigInteger, unique=True)
    hash: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    key: Mapped[str] = mapped_column(sa.String(512))
    version_id: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    sha256: Mapped[str] = mapped_column(sa.String(64))
