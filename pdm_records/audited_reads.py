"""Committing the audit event of a read before the read happens (web and API views).

A view that shows or sends record content calls
:func:`pdm_records.services.audit.record_read_event`, then :func:`commit_read`, and only then
sends the response: if the event cannot be committed, the request fails with 503 and nothing was
disclosed (no unaudited access, 21 CFR Part 11 §11.10(e)).
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import request

from .services import DbSession
from .services.audit import READ_REFUSED, AuditUnavailable


def client_address() -> str | None:
    """The client's address as the app sees it (after ProxyFix), for the audit event."""
    return (request.remote_addr or None) if request else None


def commit_read(session: DbSession) -> None:
    """Commit the read's audit event; raise :class:`AuditUnavailable` (503) if it fails."""
    try:
        session.commit()
    except sa.exc.SQLAlchemyError as exc:
        session.rollback()
        raise AuditUnavailable(READ_REFUSED) from exc
