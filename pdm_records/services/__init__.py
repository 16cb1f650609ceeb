"""Use cases. Each takes the session, adapters and the acting user explicitly, may ``flush()``,
raises domain errors, and never commits: the request or CLI command commits (STYLE §3)."""

from __future__ import annotations

from typing import Any, TypeAlias

from sqlalchemy.orm import Session, scoped_session

DbSession: TypeAlias = Session | scoped_session[Any]


def free_text(value: str | None, field: str, max_length: int) -> str:
    """Optional multi-line text: trimmed, at most ``max_length`` characters, no control or
    bidi characters; otherwise a 422 naming ``field`` (never silently cut or stored as sent)."""
    from marshmallow import ValidationError as SchemaError

    from ..errors import ValidationError
    from ..schemas import trimmed_text

    if len((value or "").strip()) > max_length:
        raise ValidationError("Please correct the marked fields.", {field: [
            f"Use at most {max_length} characters."]})
    try:
        return trimmed_text(value or "", multiline=True)
    except SchemaError as exc:
        raise ValidationError("Please correct the marked fields.",
                              {field: [str(m) for m in exc.messages]}) from exc
