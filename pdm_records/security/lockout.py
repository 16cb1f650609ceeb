"""Lock-out glue: Flask-Security's failure hook and the signing path call these.

A failed authentication must be recorded even though the request fails: the failure and its
audit events are committed at once (the rest of the request changed nothing).
"""

from __future__ import annotations

import logging

from flask import current_app, has_request_context, request

from ..models import User
from ..services import auth
from .events import security_event


def is_locked(user: User) -> bool:
    return auth.is_locked(user)


def failed_sign_in(user: User, kind: str, context: str = "sign-in") -> bool:
    """Record and commit a failed authentication; return True when it locked the account."""
    from ..extensions import db

    remote = request.remote_addr if has_request_context() else None
    locked = auth.record_failure(
        db.session, user, kind=kind, context=context,
        threshold=int(current_app.config["PDM_LOCKOUT_THRESHOLD"]),
        minutes=int(current_app.config["PDM_LOCKOUT_MINUTES"]), remote_addr=remote)
    db.session.commit()
    event = "signing.failure" if context == "signing" else (
        "mfa.failure" if kind in ("totp", "recovery_code") else "signin.failure")
    security_event(event, outcome="failure", level=logging.WARNING, user_id=user.id,
                   email=user.email, kind=kind)
    if locked:
        security_event("account.locked", outcome="failure", level=logging.WARNING,
                       user_id=user.id, email=user.email, until=user.locked_until,
                       after=context)
    return locked


def refused_while_locked(user: User, context: str) -> None:
    security_event("account.locked_attempt", outcome="failure", level=logging.WARNING,
                   user_id=user.id, email=user.email, context=context,
                   until=user.locked_until)
