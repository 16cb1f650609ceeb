"""Accounts, roles and API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from flask_security import AsaList, RoleMixin, UserMixin
from sqlalchemy.ext.mutable import MutableList
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from .base import Base

if TYPE_CHECKING:
    from .catalogue import Site

roles_users = sa.Table(
    "roles_users",
    Base.metadata,
    sa.Column("user_id", sa.ForeignKey("user.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("role_id", sa.ForeignKey("role.id", ondelete="CASCADE"), primary_key=True),
)


class RoleRow(Base, RoleMixin):
    """A role name from :class:`pdm_records.permissions.Role`; permissions live in code."""

    __tablename__ = "role"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(32), unique=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    update_datetime: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Base, UserMixin):
    """An account. Field names prefixed ``fs_``, ``tf_`` etc. are Flask-Security-Too's."""

    __tablename__ = "user"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(255), unique=True)
    username: Mapped[str | None] = mapped_column(sa.String(255), unique=True, default=None)
    password: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    active: Mapped[bool] = mapped_column(default=True)
    fs_uniquifier: Mapped[str] = mapped_column(sa.String(64), unique=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)

    printed_name: Mapped[str] = mapped_column(sa.String(200))
    # Evidence of a prescriber's authorisation (MDR Annex XIII §1): registration / licence number.
    registration_number: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    site_id: Mapped[int | None] = mapped_column(sa.ForeignKey("site.id"), default=None)

    # Flask-Security declares these non-optional; they are empty until the first sign-in.
    last_login_at: Mapped[datetime | None] = mapped_column(default=None)  # type: ignore[assignment]
    current_login_at: Mapped[datetime | None] = mapped_column(  # type: ignore[assignment]
        default=None
    )
    last_login_ip: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    current_login_ip: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    login_count: Mapped[int | None] = mapped_column(default=0)  # type: ignore[assignment]

    tf_primary_method: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    tf_totp_secret: Mapped[str | None] = mapped_column(sa.String(255), default=None)
    tf_phone_number: Mapped[str | None] = mapped_column(sa.String(128), default=None)
    mf_recovery_codes: Mapped[list[str] | None] = mapped_column(
        MutableList.as_mutable(AsaList()), default=None
    )
    # Replay protection (RFC 6238 §5.2): the last accepted TOTP time step is never accepted again.
    tf_totp_last_counter: Mapped[int | None] = mapped_column(sa.BigInteger, default=None)
    # Lock-out (docs/security/authentication.md): consecutive failed authentications since the
    # last success, and the end of the current lock.
    failed_auth_count: Mapped[int] = mapped_column(default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(default=None)

    create_datetime: Mapped[datetime] = mapped_column(default=utcnow)
    update_datetime: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    roles: Mapped[list[RoleRow]] = relationship(  # type: ignore[assignment]
        secondary=roles_users, lazy="selectin", order_by=RoleRow.name
    )
    site: Mapped[Site | None] = relationship(lazy="joined")

    @property
    def role_names(self) -> list[str]:
        return sorted(r.name for r in self.roles)

    # -- Flask-Security-Too hooks (5.8+): per-role mandatory 2FA, lock-out, failure counting --
    def check_tf_required(
        self, tf_setup_methods: list[tuple[str, str]], tf_fresh: bool
    ) -> tuple[bool, list[tuple[str, str]]]:
        """Two-factor is required when the user enrolled or a role of theirs makes it mandatory
        (``PDM_MFA_REQUIRED_ROLES``). Always validated: no 'remember this device'."""
        from ..security.mfa import mfa_required

        return bool(tf_setup_methods) or mfa_required(self), tf_setup_methods

    def check_tf_required_setup(self) -> bool:
        from ..security.mfa import mfa_required

        return mfa_required(self)

    def track_failed_authn(self, auth_type: str, tfa: bool = False) -> None:
        """A failed password or second factor at sign-in: counts towards the lock-out."""
        from ..security.lockout import failed_sign_in

        failed_sign_in(self, "totp" if tfa else auth_type)

    def is_locked(self, form_error: list[str] | None = None) -> bool:
        from ..security.lockout import is_locked

        return is_locked(self)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class ApiToken(Base):
    """A revocable bearer token. Only the SHA-256 of the token is stored."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(sa.String(100))
    token_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    prefix: Mapped[str] = mapped_column(sa.String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="joined")

    def is_usable(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now
