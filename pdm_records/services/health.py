"""Reachability of the database and the object store (health endpoint, doctor)."""

from __future__ import annotations

import sqlalchemy as sa

from ..storage import ObjectStore, StorageError
from . import DbSession


def check_dependencies(session: DbSession, store: ObjectStore | None) -> list[str]:
    """Problems reaching the database and the store; empty when both answer."""
    problems: list[str] = []
    try:
        session.execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as exc:
        session.rollback()
        problems.append(f"database unreachable: {type(exc).__name__}")
    if store is None:
        problems.append("object store unavailable: not configured")
    else:
        try:
            problems.extend(store.check())
        except StorageError as exc:
            problems.append(f"object store unavailable: {exc}")
    return problems
