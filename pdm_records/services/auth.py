"""Authentication failures, lock-out, unlock and the reset of a lost second factor (DOMAIN.md
§8; IMDRF N60: authentication hardening; NIST SP 800-63B §5.2.2: limit failed authentication
attempts, §6.1.2.3: replacement of a lost authenticator).

A failure is a wrong password or second factor at sign-in, or at the moment of signing. Every
failure is audited; ``threshold`` consecutive failures lock the account for ``minutes``; a
success (a completed sign-in or signature) resets the count. An administrator can unlock, and can
reset another user's second factor when the authenticator is lost (the operator can too, with
``pdm reset-mfa``).

Contracts as for every service: the caller passes the session and commits.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..clock import utcnow
from ..errors import ValidationError
from ..models import User
from . import DbSession, free_text
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


def is_enrolled(user: User) -> bool:
    """True when ``user`` has a second factor (an authenticator key) to sign in with."""
    return bool(user.tf_totp_secret and user.tf_primary_method)


@dataclass(frozen=True)
class SecondFactorReset:
    """What :func:`reset_second_factor` removed (never the secret itself)."""

    user_id: int
    email: str
    method: str
    recovery_codes_removed: int


def check_second_factor_reset(*, actor: User | None, user: User, reason: str | None) -> str:
    """The rules of a reset that need no credential; return the cleaned reason.

    Refused (422 naming the field): ``user`` has no second factor (``user``); an administrator
    resets their own (``user``: another administrator must, so that a stolen administrator
    session cannot strip the administrator's second factor); no reason, or one that breaks the
    free-text rules (``reason``, at most 2000 characters).
    """
    if actor is not None and actor.id == user.id:
        raise ValidationError(
            "You cannot reset your own second factor; nothing was changed.",
            {"user": ["Another administrator must reset it (or the operator, with "
                      "pdm reset-mfa)."]})
    if not is_enrolled(user):
        raise ValidationError(
            f"{user.email} has no second factor to reset; nothing was changed.",
            {"user": ["This account has not enrolled an authenticator app."]})
    text = free_text(reason, "reason", 2000)
    if not text:
        raise ValidationError("Give a reason; nothing was changed.", {"reason": [
            "Say why the second factor is reset (for example: phone lost, ticket number)."]})
    return text


def reset_second_factor(
    session: DbSession, *, actor: User | None, user: User, reason: str | None,
    password: str | None = None, totp_code: str | None = None,
) -> SecondFactorReset:
    """Remove ``user``'s lost second factor, so that they enrol a new authenticator at their
    next sign-in (at once when a role of theirs makes two-factor sign-in mandatory).

    ``actor`` is the administrator, who re-authenticates with their own ``password`` and, when
    they have enrolled, a current ``totp_code``, exactly as for signing
    (:func:`~pdm_records.services.signatures.check_password`: a wrong one raises
    :class:`~pdm_records.services.signatures.SigningAuthenticationFailed`, which the caller
    records after its rollback). ``actor`` None is the server operator (``pdm reset-mfa``): the
    command line is the recovery path when no other administrator can sign in.

    Removes the authenticator key and method, the recovery codes and the replay counter, and
    rotates ``fs_uniquifier``: every session and remember cookie of ``user`` ends at once
    (Flask-Security loads the user by it). API tokens are kept: they are a separate credential
    that a lost phone does not expose, and a mandatory-role user's tokens stop working anyway
    until they have enrolled again. The rules checked first are those of
    :func:`check_second_factor_reset`, before any credential. Audited as ``mfa.reset`` (enrolled
    yes → no, the number of recovery codes removed, the reason; no secret). Flushes, never
    commits.
    """
    from .signatures import check_password

    text = check_second_factor_reset(actor=actor, user=user, reason=reason)
    if actor is not None:
        check_password(actor, password, totp_code)  # raises on a wrong password or code
        record_success(session, actor)
    removed = SecondFactorReset(user_id=user.id, email=user.email,
                                method=str(user.tf_primary_method),
                                recovery_codes_removed=len(user.mf_recovery_codes or []))
    user.tf_primary_method = None
    user.tf_totp_secret = None
    user.tf_phone_number = None
    user.mf_recovery_codes = None
    user.tf_totp_last_counter = None
    user.fs_uniquifier = uuid.uuid4().hex  # as Flask-Security's datastore.set_uniquifier
    session.flush()
    record_event(session, actor=actor, action="mfa.reset", target_type="user",
                 target_id=user.id,
                 before={"email": user.email, "enrolled": True, "method": removed.method,
                         "recovery_codes": removed.recovery_codes_removed},
                 after={"email": user.email, "enrolled": False, "method": None,
                        "recovery_codes": 0, "sessions_ended": True, "reason": text})
    return removed
