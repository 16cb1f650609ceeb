"""Writing audit events (21 CFR Part 11 §11.10(e)).

Every state-changing service calls :func:`record_event` before it returns, inside the caller's
transaction: the change and its event commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from ..canonical import to_canonical_value
from ..clock import utcnow
from ..models import AuditEvent, User
from . import DbSession


def actor_label(actor: User | None) -> str:
    if actor is None:
        return "system"
    return f"{actor.printed_name} <{actor.email}>"


def record_event(
    session: DbSession,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: object | None = None,
    case_id: int | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Add an audit event to ``session`` (flushed, not committed). Values are stored as JSON."""
    event = AuditEvent(
        occurred_at=utcnow(),
        actor_id=actor.id if actor is not None else None,
        actor_label=actor_label(actor),
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        case_id=case_id,
        before=to_canonical_value(before) if before is not None else None,
        after=to_canonical_value(after) if after is not None else None,
        remote_addr=remote_addr,
    )
    session.add(event)
    session.flush()
    return event
