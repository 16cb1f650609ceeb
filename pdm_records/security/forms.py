"""Flask-Security forms with the lock-out checked *before* any credential is verified.

While an account is locked no password, TOTP code or recovery code is evaluated, so guesses
made during the lock learn nothing. The refusal uses the generic sign-in message (no account
enumeration); the sign-in page states the lock-out rule.
"""

from __future__ import annotations

from typing import Any

from flask_security import LoginForm
from flask_security.forms import TwoFactorVerifyCodeForm
from flask_security.recovery_codes import MfRecoveryForm
from flask_security.utils import get_message

from ..models import User
from .lockout import failed_sign_in, is_locked, refused_while_locked

LOCKED_MESSAGE = ("Too many failed attempts: this sign-in is paused. Try again later or ask "
                  "an administrator.")


class PdmLoginForm(LoginForm):
    def validate(self, **kwargs: Any) -> bool:
        from ..extensions import db
        from ..services.users import find_user_by_email

        email = (self.email.data or "").strip() if self.email.data else ""
        # Only a plausible address is looked up (PostgreSQL refuses NUL characters in text).
        plausible = email and len(email) < 255 and email.isprintable()
        user = find_user_by_email(db.session, email) if plausible else None
        if user is not None and is_locked(user):
            # Run the form's own checks for their messages, but never verify the password.
            super(LoginForm, self).validate(**kwargs)
            refused_while_locked(user, "sign-in")
            self.form_errors.append(get_message("GENERIC_AUTHN_FAILED")[0])
            self.user = None
            return False
        ok = super().validate(**kwargs)
        if not ok and self.user is None and email:
            from .events import security_event

            security_event("signin.failure", outcome="failure", email=email[:100],
                           kind="unknown_account")
        return ok


class PdmTwoFactorVerifyCodeForm(TwoFactorVerifyCodeForm):
    def validate(self, **kwargs: Any) -> bool:
        user = self.user
        if isinstance(user, User) and not self.is_setup and is_locked(user):
            refused_while_locked(user, "second factor")
            self.code.errors = [LOCKED_MESSAGE]
            return False
        return bool(super().validate(**kwargs))


class PdmMfRecoveryForm(MfRecoveryForm):
    def validate(self, **kwargs: Any) -> bool:
        user = self.user
        if isinstance(user, User) and is_locked(user):
            refused_while_locked(user, "recovery code")
            self.code.errors = [LOCKED_MESSAGE]
            return False
        ok = bool(super().validate(**kwargs))
        if not ok and isinstance(user, User) and self.code.data:
            failed_sign_in(user, "recovery_code")
        return ok


class PdmPasswordUtil:
    """Flask-Security's password hook (change password) using the product's policy."""

    def __init__(self, app: Any) -> None:
        from flask_security.password_util import PasswordUtil

        self._base = PasswordUtil(app)

    def normalize(self, password: str) -> str:
        return str(self._base.normalize(password))

    def validate(self, password: str, is_register: bool, **kwargs: Any) -> tuple[list[str] | None,
                                                                                  str]:
        from ..passwords import password_problems

        normal = self.normalize(password)
        user = kwargs.get("user")
        email = getattr(user, "email", "") or str(kwargs.get("email") or "")
        return (password_problems(normal, email) or None), normal
