"""Accounts, roles and API bearer tokens.

Contracts: functions take the session and the acting user explicitly, validate database rules
(unique e-mail, existing site), write an audit event, ``flush()`` and never commit.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_security import hash_password

from ..clock import utcnow
from ..errors import NotFound, ValidationError
from ..models import ApiToken, RoleRow, Site, User
from ..passwords import password_problems
from ..permissions import ROLE_DESCRIPTIONS, Role
from . import DbSession
from .audit import record_event

TOKEN_PREFIX = "pdm_"  # noqa: S105  # nosec B105  # a public prefix, not a secret


def ensure_roles(session: DbSession) -> dict[str, RoleRow]:
    """Create the four role rows if missing; return them by name."""
    rows = {r.name: r for r in session.scalars(sa.select(RoleRow))}
    for role in Role:
        if role.value not in rows:
            row = RoleRow(name=role.value, description=ROLE_DESCRIPTIONS[role])
            session.add(row)
            rows[role.value] = row
    session.flush()
    return rows


def find_user_by_email(session: DbSession, email: str) -> User | None:
    return session.scalar(sa.select(User).where(sa.func.lower(User.email) == email.lower()))


def create_user(
    session: DbSession,
    *,
    actor: User | None,
    email: str,
    password: str,
    printed_name: str,
    roles: Iterable[str],
    registration_number: str | None = None,
    site_id: int | None = None,
) -> User:
    """Create an active account with the given roles.

    Raises :class:`ValidationError` naming the field for a taken e-mail, an unknown site or role,
    or a password that breaks the policy.
    """
    field_errors: dict[str, list[str]] = {}
    if find_user_by_email(session, email) is not None:
        field_errors["email"] = ["An account with this e-mail address exists already."]
    if pw_problems := password_problems(password, email):
        field_errors["password"] = pw_problems
    role_names = sorted(set(roles))
    unknown = [r for r in role_names if r not in {x.value for x in Role}]
    if unknown or not role_names:
        field_errors["roles"] = [
            f"Choose one or more of: {', '.join(r.value for r in Role)}."
        ]
    if site_id is not None and session.get(Site, site_id) is None:
        field_errors["site_id"] = ["No such site."]
    if Role.CLINICIAN.value in role_names and not registration_number:
        field_errors["registration_number"] = [
            "A prescriber needs a registration or licence number (MDR Annex XIII §1)."
        ]
    if field_errors:
        raise ValidationError("The account could not be created.", field_errors)

    role_rows = ensure_roles(session)
    user = User(
        email=email,
        password=hash_password(password),
        printed_name=printed_name,
        registration_number=registration_number or None,
        site_id=site_id,
        active=True,
        fs_uniquifier=uuid.uuid4().hex,
        roles=[role_rows[r] for r in role_names],
    )
    session.add(user)
    session.flush()
    record_event(
        session, actor=actor, action="user.created", target_type="user", target_id=user.id,
        after=user_snapshot(user),
    )
    return user


def user_snapshot(user: User) -> dict[str, object]:
    """What the audit trail records of an account (never the password hash)."""
    return {
        "email": user.email,
        "printed_name": user.printed_name,
        "roles": user.role_names,
        "registration_number": user.registration_number,
        "site_id": user.site_id,
        "active": user.active,
    }


def set_active(session: DbSession, *, actor: User, user: User, active: bool) -> None:
    if actor.id == user.id and not active:
        raise ValidationError("You cannot deactivate your own account.", {"active": [
            "Ask another administrator."]})
    if user.active == active:
        return
    before = user_snapshot(user)
    user.active = active
    if not active:
        # Invalidate sessions and tokens at once.
        user.fs_uniquifier = uuid.uuid4().hex
    session.flush()
    record_event(session, actor=actor, action="user.activated" if active else "user.deactivated",
                 target_type="user", target_id=user.id, before=before, after=user_snapshot(user))


def get_user(session: DbSession, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.")
    return user


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(
    session: DbSession,
    *,
    actor: User | None,
    user: User,
    name: str,
    expiry_days: int,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Create a bearer token for ``user``; return the row and the secret (shown once)."""
    now = now or utcnow()
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("The token needs a name.", {"name": [
            "Give the token a name of 1 to 100 characters."]})
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_sha256=_hash_token(secret),
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        created_at=now,
        expires_at=now + timedelta(days=expiry_days),
    )
    session.add(token)
    session.flush()
    record_event(session, actor=actor, action="token.created", target_type="api_token",
                 target_id=token.id, after={"user_id": user.id, "name": name,
                                            "expires_at": token.expires_at})
    return token, secret


def authenticate_token(session: DbSession, secret: str, now: datetime | None = None) -> User | None:
    """Return the active user owning a usable token, or None. Records last use."""
    if not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
        return None
    now = now or utcnow()
    token = session.scalar(sa.select(ApiToken).where(ApiToken.token_sha256 == _hash_token(secret)))
    if token is None or not token.is_usable(now) or not token.user.active:
        return None
    # Updating last_used_at at most once a minute keeps reads from writing on every request.
    if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
        token.last_used_at = now
    return token.user


def revoke_token(
    session: DbSession, *, actor: User, token_id: int, now: datetime | None = None
) -> None:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != actor.id and not _is_admin(actor)):
        raise NotFound("No such token.")
    if token.revoked_at is not None:
        return
    token.revoked_at = now or utcnow()
    session.flush()
    record_event(session, actor=actor, action="token.revoked", target_type="api_token",
                 target_id=token.id, before={"revoked_at": None},
                 after={"revoked_at": token.revoked_at})


def list_tokens(session: DbSession, user: User) -> list[ApiToken]:
    return list(session.scalars(
        sa.select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.created_at.desc())
    ))


def _is_admin(user: User) -> bool:
    return Role.ADMIN.value in user.role_names
