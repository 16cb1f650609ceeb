"""Use cases. Each takes the session, adapters and the acting user explicitly, may ``flush()``,
raises domain errors, and never commits: the request or CLI command commits (STYLE §3)."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy.orm import Session, scoped_session

DbSession: TypeAlias = Session | scoped_session[Any]
