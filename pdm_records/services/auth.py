"""Authentication failures, lock-out and unlock (DOMAIN.md §8; IMDRF N60: authentication
hardening; NIST SP 800-63B §5.2.2: limit failed authentication attempts).

A failure is a wrong password or second factor at sign-in, or at the moment of signing. Every
failure is audited; ``threshold`` consecutive failures lock the account for ``minutes``; a
success (a completed sign-in or signature) resets the count. An administrator can unlock.

Contracts as for every service: the caller passes the session and commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..clock import utcnow
from ..models import User
from . import DbSession
from .audit import record_event


def is_locked(user: User, now: datetime | None = None) -> bool:
    return user.locked_until is not None and user.locked_until > (now or utcnow())


def record_failure(
    session: DbSession, user: User, *, kind: str, context: str, threshold: int, minutes: int,
    remote_addr: str | None = None, now: datetime | None = None,
) -> bool:
    """Count a failed authentication of ``user``; return True when it locked the account.

    ``kind`` is what failed (``password``, ``totp``, ``recovery_code``), ``context`` where
    (``sign-in``, ``signing``). Nothing secret is recorded.
    """
    now = now or utcnow()
    user.failed_auth_count = (user.failed_auth_count or 0) + 1
    record_event(session, actor=None, action="auth.failed", target_type="user",
                 target_id=user.id, remote_addr=remote_addr,
                 after={"email": user.email, "kind": kind, "context": context,
                        "consecutive_failures": user.failed_auth_count})
    locked = False
    if user.failed_auth_count >= threshold:
        user.locked_until = now + timedelta(minutes=minutes)
        record_event(session, actor=None, action="auth.locked_out", target_type="user",
                     target_id=user.id, remote_addr=remote_addr,
                     after={"email": user.email, "locked_until": user.locked_until,
                            "after_failures": user.failed_auth_count})
        user.failed_auth_count = 0
        locked = True
    session.flush()
    return locked


def record_success(session: DbSession, user: User) -> None:
    """A completed authentication resets the failure count (not audited: sign-ins are tracked
    on the account, signatures have their own events)."""
    if user.failed_auth_count:
        user.failed_auth_count = 0
        session.flush()


def unlock(session: DbSession, *, actor: User, user: User) -> None:
    """End a lock-out early (administrators)."""
    before = {"locked_until": user.locked_until, "failed_auth_count": user.failed_auth_count}
    user.locked_until = None
    user.failed_auth_count = 0
    session.flush()
    record_event(session, actor=actor, action="auth.unlocked", target_type="user",
                 target_id=user.id, before=before,
                 after={"locked_until": None, "failed_auth_count": 0})
