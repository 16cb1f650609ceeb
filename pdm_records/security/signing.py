"""Failed signing attempts: rate-limited per account, audited, counted towards the lock-out.

A wrong password or TOTP code at signing raises
:class:`~pdm_records.services.signatures.SigningAuthenticationFailed`; whoever renders that
error calls :func:`note_signing_failure` after rolling the request back, so the failure is
recorded in its own transaction. ``PDM_SIGNING_RATE_LIMIT`` failures per account make further
signing attempts answer 429 until the window passes (before any credential is checked).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, request
from flask_limiter.errors import RateLimitExceeded
from limits import parse

from ..extensions import db, limiter
from ..models import User
from ..services.signatures import SigningAuthenticationFailed
from .lockout import failed_sign_in

# Every route that checks a signing password (services.signatures.check_password: signing,
# and an administrator re-authenticating for a second-factor reset); the
# functional test tests/functional/test_signing_failures.py holds a request for each.
SIGNING_ENDPOINTS = frozenset({
    "cases.transition", "api_cases.submit", "api_cases.transition", "envelopes.approve",
    "api_envelopes.approve_envelope", "retention.place_hold", "retention.release_hold",
    "retention.dispose", "admin.reset_mfa"})
NAMESPACE = "pdm-signing-failures"


def _item() -> Any:
    return parse(str(current_app.config["PDM_SIGNING_RATE_LIMIT"]))


def note_signing_failure(exc: Exception) -> None:
    """Record a failed signing authentication (call after the rollback)."""
    if not isinstance(exc, SigningAuthenticationFailed):
        return
    user = db.session.get(User, exc.user_id)
    if user is None:
        return
    limiter.limiter.hit(_item(), NAMESPACE, str(user.id))
    failed_sign_in(user, exc.kind, context="signing")


class _SigningLimit:
    """Stands in for a flask-limiter ``Limit`` in the 429 error (its description)."""

    error_message = "Too many failed signing attempts; wait a minute and try again."


def register_signing_limit(app: Flask) -> None:
    @app.before_request
    def limit_signing_failures() -> None:
        if request.method != "POST" or request.endpoint not in SIGNING_ENDPOINTS:
            return
        from ..access import current_actor

        actor = current_actor()
        if actor is None:
            return
        if not limiter.limiter.test(_item(), NAMESPACE, str(actor.id)):
            from .events import security_event

            security_event("signing.rate_limited", outcome="failure", user_id=actor.id)
            raise RateLimitExceeded(_SigningLimit())  # type: ignore[arg-type]
