"""Two-factor sign-in with an authenticator app (TOTP, RFC 6238) on Flask-Security-Too.

- Which roles must use it: ``PDM_MFA_REQUIRED_ROLES`` (default quality and admin); anyone may
  enrol. A user of such a role who has not enrolled is sent to enrolment after the password and
  is not signed in until it is done (Flask-Security's ``setup_from_login`` state); a session
  that exists already (the setting changed) reaches nothing but enrolment and sign-out.
- Replay protection (RFC 6238 §5.2): the last accepted time step is stored on the account and
  no code of that step or an earlier one is accepted again, at sign-in or at signing.
- Signing (21 CFR Part 11 §11.200) asks for a current code when the signer has enrolled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, flash, redirect, request, url_for
from flask_security import current_user
from flask_security.totp import Totp
from passlib.totp import TotpMatch

from ..config import mfa_required_roles
from ..models import User
from ..services.auth import is_enrolled as is_enrolled  # one definition, re-exported here


def mfa_required(user: User) -> bool:
    """True when a role of ``user`` must use two-factor sign-in."""
    return bool(mfa_required_roles(current_app.config) & set(user.role_names))


class PdmTotp(Totp):
    """Flask-Security's TOTP factory with replay protection kept on the account row."""

    def get_last_counter(self, user: Any) -> int | None:
        return getattr(user, "tf_totp_last_counter", None)

    def set_last_counter(self, user: Any, tmatch: TotpMatch) -> None:
        user.tf_totp_last_counter = int(tmatch.counter)


@dataclass(frozen=True)
class Enrolment:
    b32_key: str
    uri: str


def enrol(user: User) -> Enrolment:
    """Enrol ``user`` with a new authenticator secret (operators: demo, tests' fixtures).

    The caller commits. People enrol themselves in the browser (``/tf-setup``)."""
    from ..extensions import security

    factory = security.totp_factory
    secret = factory.generate_totp_secret()
    security.datastore.tf_set(user, "authenticator", totp_secret=secret)
    user.tf_totp_last_counter = None
    return enrolment_of(user)


def enrolment_of(user: User) -> Enrolment:
    """The base32 key and otpauth:// URI of an enrolled user (what an authenticator needs)."""
    from ..extensions import security

    if not user.tf_totp_secret:  # callers check is_enrolled first; never strip the check (-O)
        raise ValueError(f"{user.email} has not enrolled an authenticator")
    factory = security.totp_factory
    return Enrolment(factory.get_totp_b32_key(user.tf_totp_secret),
                     factory.get_totp_uri(user.email, user.tf_totp_secret))


def verify_code(user: User, code: str | None) -> bool:
    """Check a TOTP code of an enrolled user (replay-protected). Never raises."""
    from ..extensions import security

    if not code or not user.tf_totp_secret:
        return False
    code = "".join(code.split())
    if not code.isdigit() or len(code) > 10:
        return False
    return bool(security.totp_factory.verify_totp(
        token=code, totp_secret=user.tf_totp_secret, user=user,
        window=int(current_app.config["SECURITY_TWO_FACTOR_AUTHENTICATOR_VALIDITY"])))


# Endpoints a signed-in user who must enrol can still reach.
ENROLMENT_ENDPOINTS = frozenset({
    "security.two_factor_setup", "security.two_factor_token_validation",
    "security.two_factor_setup_validate", "security.logout", "security.verify",
    "security.static", "static",
})


def register_enrolment_guard(app: Flask) -> None:
    @app.before_request
    def require_enrolment() -> Any:
        if request.path.startswith("/api/") or request.endpoint in ENROLMENT_ENDPOINTS:
            return None
        if not current_user.is_authenticated:
            return None
        user = current_user._get_current_object()
        if isinstance(user, User) and mfa_required(user) and not is_enrolled(user):
            flash("Your role requires two-factor sign-in: set up an authenticator app to "
                  "continue.", "warning")
            return redirect(url_for("security.two_factor_setup"))
        return None
