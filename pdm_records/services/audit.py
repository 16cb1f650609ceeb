"""Writing audit events (21 CFR Part 11 §11.10(e)): one global, append-only hash chain.

Every state-changing service calls :func:`record_event` before it returns, inside the caller's
transaction: the change and its event commit together or not at all. Reads of records (a file
downloaded, a dossier opened, a package exported) call :func:`record_read_event`; the view
commits that event *before* it sends anything, so there is no unaudited access.

Appending is serialised by the single ``audit_chain_head`` row: the first statement of an append
is ``UPDATE audit_chain_head SET seq = seq + 1 … RETURNING seq, hash``. On PostgreSQL that UPDATE
takes the same row lock as ``SELECT … FOR UPDATE`` and holds it until the transaction ends; on
SQLite it is a write, so the database's single write lock is taken *before* the head is read
(update-first, the effect of ``BEGIN IMMEDIATE``). Either way two transactions can never read the
same head, so the chain never forks and ``seq`` stays gap-free (a rolled-back transaction rolls
its head update back too). Because the lock is held until commit, services record their events
after they have done slow work (storing objects, measuring meshes), not before.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..audit_chain import GENESIS_HASH, event_content, event_hash
from ..canonical import to_canonical_value
from ..clock import utcnow
from ..errors import ServiceUnavailable
from ..models import AuditChainHead, AuditEvent, User
from . import DbSession

_HEAD: sa.Table = AuditChainHead.__table__  # type: ignore[assignment]
_EVENTS: sa.Table = AuditEvent.__table__  # type: ignore[assignment]


class AuditUnavailable(ServiceUnavailable):
    """The audit trail could not be written, so the read or change it describes was refused."""


def actor_label(actor: User | None) -> str:
    if actor is None:
        return "system"
    return f"{actor.printed_name} <{actor.email}>"


def _lock_head(session: DbSession) -> tuple[int, str]:
    """Advance the head (locking it until commit); return ``(new seq, previous hash)``."""
    bump = (sa.update(_HEAD).where(_HEAD.c.id == 1).values(seq=_HEAD.c.seq + 1)
            .returning(_HEAD.c.seq, _HEAD.c.hash))
    row = session.execute(bump).one_or_none()
    if row is None:
        # No head row (a fresh test database after TRUNCATE, or someone deleted it): start it
        # from the last stored event so an append never forks the chain, then lock it.
        last = session.execute(sa.select(_EVENTS.c.seq, _EVENTS.c.hash)
                               .order_by(_EVENTS.c.seq.desc()).limit(1)).one_or_none()
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        session.execute(insert(_HEAD).values(
            id=1, seq=last.seq if last else 0,
            hash=last.hash if last else GENESIS_HASH).on_conflict_do_nothing())
        row = session.execute(bump).one()
    return int(row.seq), str(row.hash)


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
    """Append an audit event to the chain in ``session`` (flushed, not committed).

    Values are stored as canonical JSON values. From this call until the transaction ends, the
    chain head is locked: other transactions that write events wait.
    """
    fields: dict[str, Any] = {
        "occurred_at": utcnow(),
        "actor_id": actor.id if actor is not None else None,
        "actor_label": actor_label(actor),
        "action": action,
        "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "case_id": case_id,
        "before": to_canonical_value(before) if before is not None else None,
        "after": to_canonical_value(after) if after is not None else None,
        "remote_addr": remote_addr,
    }
    session.flush()  # rows this event may refer to get their ids first
    seq, prev_hash = _lock_head(session)
    digest = event_hash(event_content(seq=seq, prev_hash=prev_hash, **fields))
    event = AuditEvent(seq=seq, prev_hash=prev_hash, hash=digest, **fields)
    session.add(event)
    session.execute(sa.update(_HEAD).where(_HEAD.c.id == 1).values(hash=digest))
    session.flush()
    return event


def record_read_event(
    session: DbSession,
    *,
    actor: User | None,
    action: str,
    target_type: str,
    target_id: object | None = None,
    case_id: int | None = None,
    details: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> AuditEvent:
    """Record that ``actor`` read something (``file.downloaded``, ``case.dossier_viewed``,
    ``case.exported``); ``details`` go into the event's ``after`` values.

    Flushed, not committed: the view commits it (``pdm_records.audited_reads.commit_read``)
    before it sends anything. If the event cannot be written this raises
    :class:`AuditUnavailable` (a 503), and the read must not happen.
    """
    try:
        return record_event(session, actor=actor, action=action, target_type=target_type,
                            target_id=target_id, case_id=case_id, after=details,
                            remote_addr=remote_addr)
    except sa.exc.SQLAlchemyError as exc:
        raise AuditUnavailable(READ_REFUSED) from exc


READ_REFUSED = ("The access could not be recorded in the audit trail, so nothing was sent "
                "(no unaudited access, 21 CFR Part 11 §11.10(e)). Try again in a minute.")
