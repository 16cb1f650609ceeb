"""Extension objects, created unbound; :func:`pdm_records.create_app` binds them."""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_security import Security
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect

from .models.base import Base
from .security.forms import (
    PdmLoginForm,
    PdmMfRecoveryForm,
    PdmPasswordUtil,
    PdmTwoFactorVerifyCodeForm,
)
from .security.mfa import PdmTotp

# Models derive from our own typed Base; Flask-SQLAlchemy only manages engine and session.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
# Our forms check the lock-out before any credential; our TOTP factory refuses replayed codes;
# our password hook applies the product's policy (pdm_records.security).
security = Security(login_form=PdmLoginForm, two_factor_verify_code_form=PdmTwoFactorVerifyCodeForm,
                    mf_recovery_form=PdmMfRecoveryForm, totp_cls=PdmTotp,
                    password_util_cls=PdmPasswordUtil)  # type: ignore[arg-type]
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
api = Api()
