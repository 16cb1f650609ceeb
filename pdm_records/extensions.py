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

# Models derive from our own typed Base; Flask-SQLAlchemy only manages engine and session.
db = SQLAlchemy(metadata=Base.metadata)
migrate = Migrate()
security = Security()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])
api = Api()
