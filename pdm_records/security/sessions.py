"""Session idle and absolute timeouts (DOMAIN.md §8: session control; OWASP session management).

The session remembers when the user signed in and when they were last active (UTC epoch
seconds, from the clock seam). Each request checks both: after ``PDM_SESSION_IDLE_MINUTES``
without a request, or ``PDM_SESSION_ABSOLUTE_HOURS`` after signing in, the user is signed out
and asked to sign in again. The cookie itself also stops being accepted after the absolute
lifetime (Flask's ``PERMANENT_SESSION_LIFETIME``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app, flash, redirect, request, session, url_for
from flask_security import current_user, logout_user, user_authenticated

from ..clock import utcnow
from .events import security_event

SIGNED_IN_AT = "pdm_signed_in_at"
LAST_SEEN = "pdm_last_seen"
TOUCH_EVERY_SECONDS = 30  # fewer cookie rewrites; far below any idle timeout


def _now() -> float:
    return utcnow().timestamp()


def register_session_timeouts(app: Flask) -> None:
    def on_sign_in(sender: Any, user: Any, **extra: Any) -> None:
        now = _now()
        session[SIGNED_IN_AT] = now
        session[LAST_SEEN] = now
        from ..extensions import db
        from ..services.auth import record_success

        record_success(db.session, user)
        security_event("signin.success", user_id=user.id, email=user.email,
                       methods=list(extra.get("authn_via") or []))

    user_authenticated.connect(on_sign_in, app, weak=False)

    @app.before_request
    def enforce_timeouts() -> Any:
        if request.path.startswith("/api/") or request.endpoint in ("static", "security.static"):
            return None
        if not current_user.is_authenticated:
            return None
        now = _now()
        idle = int(current_app.config["PDM_SESSION_IDLE_MINUTES"]) * 60
        absolute = int(current_app.config["PDM_SESSION_ABSOLUTE_HOURS"]) * 3600
        signed_in = session.get(SIGNED_IN_AT)
        last_seen = session.get(LAST_SEEN, signed_in)
        reason = None
        if not isinstance(signed_in, int | float) or now - signed_in > absolute:
            reason = "absolute"
        elif not isinstance(last_seen, int | float) or now - last_seen > idle:
            reason = "idle"
        if reason is not None:
            user_id = current_user.id
            logout_user()
            for key in (SIGNED_IN_AT, LAST_SEEN):
                session.pop(key, None)
            security_event("session.expired", outcome="failure", user_id=user_id,
                           reason=reason)
            flash("You were signed out after " + (
                f"{idle // 60} minutes without activity." if reason == "idle"
                else f"{absolute // 3600} hours. Sign in again."), "warning")
            return redirect(url_for("security.login", next=request.full_path
                                    if request.method == "GET" else None))
        if now - float(last_seen) >= TOUCH_EVERY_SECONDS:
            session[LAST_SEEN] = now
        return None
