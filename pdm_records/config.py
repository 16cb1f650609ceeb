"""Every setting of pdm-records, with its default, in one place.

Precedence, lowest first: the defaults below, ``<instance>/config.toml``, ``PDM_*`` environment
variables, then the mapping passed to :func:`pdm_records.create_app` (tests).

``load_settings`` is pure (no Flask): it takes the environment and the instance path and returns a
plain dict of Flask config keys, plus the list of problems :func:`check_settings` finds. The
factory decides what a problem means: a web server or worker in production refuses to start, a
CLI command defers and ``pdm doctor`` reports.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from .clock import utcnow

DEFAULT_SECRET_PLACEHOLDERS = {"", "change-me", "dev", "secret", "changeme"}


@dataclass(frozen=True)
class Setting:
    """One configuration key: its Flask name, environment variable, default and parser."""

    key: str
    default: Any
    parse: Callable[[str], Any]
    doc: str

    @property
    def env(self) -> str:
        return "PDM_" + self.key.removeprefix("PDM_")


def _bool(value: str) -> bool:
    if value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if value.strip().lower() in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true/false, got {value!r}")


def _int(value: str) -> int:
    return int(value.strip())


def _str(value: str) -> str:
    return value.strip()


SETTINGS: tuple[Setting, ...] = (
    Setting("PDM_ENV", "development", _str, "development or production"),
    Setting("PDM_DATABASE_URL", None, _str,
            "SQLAlchemy URL; default: SQLite file pdm.sqlite3 in the instance folder"),
    Setting("PDM_STORAGE_BACKEND", "local", _str, "local (write-once folder) or s3"),
    Setting("PDM_STORAGE_PATH", None, _str,
            "folder of the local write-once store; default: objects/ in the instance folder"),
    Setting("PDM_MAX_UPLOAD_MB", 512, _int, "largest accepted request body, in MiB"),
    Setting("PDM_ZIP_MAX_DECOMPRESSED_MB", 2048, _int,
            "largest decompressed size of an uploaded zip or 3MF, in MiB (zip-bomb guard)"),
    Setting("PDM_ZIP_MAX_RATIO", 100, _int,
            "largest compression ratio of an uploaded zip or 3MF (zip-bomb guard)"),
    Setting("PDM_SECRET_KEY", None, _str,
            "session signing key; default: generated once into <instance>/secret_key"),
    Setting("PDM_PATIENT_CODE_PATTERN", r"^[A-Z0-9][A-Z0-9-]{3,31}$", _str,
            "regular expression a pseudonymous patient code must match"),
    Setting("PDM_TOKEN_EXPIRY_DAYS", 90, _int, "lifetime of API bearer tokens, in days"),
    Setting("PDM_LOGIN_RATE_LIMIT", "10 per minute", _str,
            "rate limit of login attempts per client address (Flask-Limiter syntax)"),
    Setting("PDM_RATELIMIT_STORAGE_URI", "memory://", _str,
            "Flask-Limiter storage; use redis://… when running several web processes"),
    Setting("PDM_SESSION_IDLE_MINUTES", 30, _int, "session idle timeout, in minutes"),
    Setting("PDM_SESSION_ABSOLUTE_HOURS", 12, _int,
            "absolute session lifetime, in hours: sign in again after it, active or not"),
    Setting("PDM_MFA_REQUIRED_ROLES", "quality,admin", _str,
            "comma-separated roles that must use two-factor sign-in (TOTP); empty: none"),
    Setting("PDM_LOCKOUT_THRESHOLD", 10, _int,
            "consecutive failed sign-ins or signing attempts that lock an account"),
    Setting("PDM_LOCKOUT_MINUTES", 15, _int, "how long a lock-out lasts, in minutes"),
    Setting("PDM_SIGNING_RATE_LIMIT", "10 per minute", _str,
            "rate limit of signing attempts per account (Flask-Limiter syntax)"),
    Setting("PDM_SECURITY_LOG", "stderr", _str,
            "where security events go as JSON lines: stderr, a file path, or off"),
    Setting("PDM_PREFERRED_URL_SCHEME", "http", _str,
            "https behind a TLS reverse proxy: turns on HSTS and secure cookies"),
    Setting("PDM_PROXY_COUNT", 0, _int,
            "number of reverse proxies in front of the app whose X-Forwarded-* headers to trust"),
    Setting("PDM_PAGE_SIZE", 25, _int, "rows per page in lists"),
    Setting("PDM_SITE_NAME", "pdm-records", _str, "name shown in the page header"),
    Setting("PDM_S3_BUCKET", None, _str, "S3 bucket (storage backend s3)"),
    Setting("PDM_S3_ENDPOINT_URL", None, _str, "S3 endpoint; falls back to AWS_ENDPOINT_URL"),
    Setting("PDM_S3_REGION", None, _str, "S3 region"),
    Setting("PDM_S3_LOCK_MODE", "COMPLIANCE", _str, "COMPLIANCE (default) or GOVERNANCE"),
    Setting("PDM_S3_SSE", None, _str, "optional server-side encryption, e.g. AES256 or aws:kms"),
    Setting("PDM_AUDIT_CHECKPOINT_EVERY", 1000, _int,
            "checkpoint the audit chain head into write-once storage every N events"),
    Setting("PDM_AUDIT_CHECKPOINT_SECONDS", 3600, _int,
            "… or when this many seconds have passed since the last checkpoint"),
    Setting("PDM_RETENTION_POLICY", None, _str,
            "YAML retention policy (docs/retention.md); default: built-in IMDRF 15 / 5 years"),
    Setting("PDM_S3_GOVERNANCE_BYPASS", False, _bool,
            "GOVERNANCE mode only (staging): let deletions bypass the server's retention check"),
    Setting("PDM_SIGNING_KEY_PATH", None, _str,
            "Ed25519 private key that signs audit packages; default: <instance>/signing_key.pem "
            "(generated on first use, mode 0600)"),
)
SETTINGS_BY_KEY = {s.key: s for s in SETTINGS}


class ConfigurationError(RuntimeError):
    """Raised when a server or worker is asked to start on a broken configuration."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("configuration problems:\n- " + "\n- ".join(problems))
        self.problems = problems


def load_settings(
    instance_path: Path,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Return ``(config, problems)`` for an instance folder and an environment.

    Never raises for a bad value: the value keeps its default and a problem is reported.
    """
    environ = os.environ if environ is None else environ
    problems: list[str] = []
    config: dict[str, Any] = {s.key: s.default for s in SETTINGS}

    config_file = instance_path / "config.toml"
    if config_file.exists():
        try:
            with config_file.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            problems.append(f"{config_file}: cannot be read ({exc})")
        else:
            for key, value in data.items():
                full = key if key.startswith("PDM_") else "PDM_" + key.upper()
                if full not in SETTINGS_BY_KEY:
                    problems.append(f"{config_file}: unknown setting {key!r}")
                    continue
                setting = SETTINGS_BY_KEY[full]
                try:
                    parsed = setting.parse(str(value).lower() if isinstance(value, bool)
                                           else str(value))
                    if isinstance(value, float) and setting.parse is _int:
                        raise ValueError("expected a whole number")
                except ValueError as exc:
                    problems.append(f"{config_file}: {key} = {value!r} is invalid: {exc}")
                    continue
                config[full] = parsed

    for setting in SETTINGS:
        raw = environ.get(setting.env)
        if raw is None:
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as exc:
            problems.append(f"{setting.env}={raw!r} is invalid: {exc}")

    for key, value in (overrides or {}).items():
        config[key] = value

    _derive(config, instance_path, problems)
    problems.extend(check_settings(config))
    return config, problems


def _derive(config: dict[str, Any], instance_path: Path, problems: list[str]) -> None:
    """Fill in the Flask and extension keys that follow from the PDM_* settings."""
    if not config.get("PDM_DATABASE_URL"):
        config["PDM_DATABASE_URL"] = f"sqlite:///{instance_path / 'pdm.sqlite3'}"
    if not config.get("PDM_STORAGE_PATH"):
        config["PDM_STORAGE_PATH"] = str(instance_path / "objects")
    if not config.get("PDM_SIGNING_KEY_PATH"):
        config["PDM_SIGNING_KEY_PATH"] = str(instance_path / "signing_key.pem")
    config.setdefault("SQLALCHEMY_DATABASE_URI", config["PDM_DATABASE_URL"])
    config.setdefault("MAX_CONTENT_LENGTH", int(config["PDM_MAX_UPLOAD_MB"]) * 1024 * 1024)

    secret = config.get("PDM_SECRET_KEY") or config.get("SECRET_KEY")
    if not secret:
        secret = _instance_secret(instance_path, problems)
    config["SECRET_KEY"] = secret
    config["PDM_SECRET_KEY"] = secret

    https = str(config.get("PDM_PREFERRED_URL_SCHEME")) == "https"
    defaults: dict[str, Any] = {
        "PREFERRED_URL_SCHEME": config["PDM_PREFERRED_URL_SCHEME"],
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_SECURE": https,
        "REMEMBER_COOKIE_HTTPONLY": True,
        # The signed cookie is refused by Flask after the absolute lifetime; the idle timeout
        # and the absolute timeout are also enforced per request (pdm_records.security.sessions).
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(config["PDM_SESSION_ABSOLUTE_HOURS"])),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "WTF_CSRF_TIME_LIMIT": None,
        "RATELIMIT_STORAGE_URI": config["PDM_RATELIMIT_STORAGE_URI"],
        "RATELIMIT_HEADERS_ENABLED": False,  # our 429 handler sets Retry-After itself
        # Flask-Security-Too: argon2 (its default), login only; accounts are created by admins.
        "SECURITY_PASSWORD_HASH": "argon2",  # nosec B105  # a hash scheme name, no secret
        "SECURITY_PASSWORD_SALT": _derived_salt(secret),
        "SECURITY_REGISTERABLE": False,
        "SECURITY_RECOVERABLE": False,
        "SECURITY_CHANGEABLE": True,
        "SECURITY_SEND_PASSWORD_CHANGE_EMAIL": False,  # nosec B105  # a flag, no secret
        "SECURITY_TRACKABLE": True,
        "SECURITY_DATETIME_FACTORY": utcnow,
        "SECURITY_PASSWORD_LENGTH_MIN": 12,  # nosec B105  # a length, no secret
        "SECURITY_PASSWORD_CHECK_BREACHED": False,  # no network: a shipped list instead
        # Two-factor sign-in with an authenticator app (TOTP, RFC 6238) and recovery codes;
        # which roles must use it is PDM_MFA_REQUIRED_ROLES (User.check_tf_required).
        "SECURITY_TWO_FACTOR": True,
        "SECURITY_TWO_FACTOR_ENABLED_METHODS": ["authenticator"],
        "SECURITY_TWO_FACTOR_ALWAYS_VALIDATE": True,
        "SECURITY_TWO_FACTOR_RESCUE_EMAIL": False,
        "SECURITY_TWO_FACTOR_AUTHENTICATOR_VALIDITY": 90,
        "SECURITY_TWO_FACTOR_POST_SETUP_VIEW": "/account/",
        "SECURITY_TOTP_SECRETS": {1: _derived_key(secret, "totp-secrets")},
        "SECURITY_TOTP_ISSUER": config.get("PDM_SITE_NAME") or "pdm-records",
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES": True,
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES_N": 10,
        "SECURITY_MULTI_FACTOR_RECOVERY_CODES_KEYS": [_fernet_key(secret)],
        "SECURITY_MSG_TWO_FACTOR_INVALID_TOKEN": ("The code is not correct.", "error"),
        "SECURITY_POST_LOGIN_VIEW": "/",
        "SECURITY_POST_LOGOUT_VIEW": "/login",
        "SECURITY_URL_PREFIX": None,
        "SECURITY_FLASH_MESSAGES": True,
        "SECURITY_RETURN_GENERIC_RESPONSES": True,
        "SECURITY_FRESHNESS": timedelta(minutes=15),
        "SECURITY_FRESHNESS_GRACE_PERIOD": timedelta(minutes=0),
        # A header nobody sends: Flask-Security's own token login stays off (API tokens are ours).
        "SECURITY_TOKEN_AUTHENTICATION_HEADER": "X-PDM-Unused-Auth-Token",  # nosec B105  # a name
        "SECURITY_API_ENABLED_METHODS": ["session"],
        "SECURITY_DEFAULT_REMEMBER_ME": False,
        "SECURITY_USE_REGISTER_V2": True,
        "SECURITY_MSG_INVALID_PASSWORD": ("Invalid e-mail address or password.", "error"),
        "SECURITY_MSG_USER_DOES_NOT_EXIST": ("Invalid e-mail address or password.", "error"),
        "SECURITY_MSG_GENERIC_AUTHN_FAILED": ("Invalid e-mail address or password.", "error"),
        # smorest / OpenAPI
        "API_TITLE": "pdm-records API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
    }
    for key, value in defaults.items():
        config.setdefault(key, value)


def _derived_key(secret: str, purpose: str) -> str:
    """A key for one purpose derived from the secret key (one secret to manage; changing the
    secret key invalidates enrolled authenticators and recovery codes)."""
    import hashlib

    return hashlib.sha256(f"pdm-records:{purpose}:{secret}".encode()).hexdigest()


def _fernet_key(secret: str) -> bytes:
    import base64
    import hashlib

    return base64.urlsafe_b64encode(
        hashlib.sha256(f"pdm-records:recovery-codes:{secret}".encode()).digest())


def mfa_required_roles(config: Mapping[str, Any]) -> frozenset[str]:
    """The role names of ``PDM_MFA_REQUIRED_ROLES``."""
    raw = str(config.get("PDM_MFA_REQUIRED_ROLES") or "")
    return frozenset(r.strip().lower() for r in raw.split(",") if r.strip())


def _derived_salt(secret: str) -> str:
    # Flask-Security wants a salt for its signed tokens; deriving it keeps one secret to manage.
    import hashlib

    return hashlib.sha256(("pdm-records-salt:" + secret).encode()).hexdigest()


def _instance_secret(instance_path: Path, problems: list[str]) -> str:
    """Read ``<instance>/secret_key``, creating it (mode 0600) on first run."""
    path = instance_path / "secret_key"
    try:
        if path.exists():
            value = path.read_text().strip()
            if value:
                return value
        instance_path.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        if path.exists():  # present but empty: replace it
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(value + "\n")
        return value
    except FileExistsError:
        return path.read_text().strip()
    except OSError as exc:
        problems.append(f"secret key file {path} cannot be created ({exc}); set PDM_SECRET_KEY")
        return ""


def check_settings(config: Mapping[str, Any]) -> list[str]:
    """Return human-readable problems of a configuration (empty when it is sound)."""
    problems: list[str] = []
    env = config.get("PDM_ENV")
    if env not in {"development", "production"}:
        problems.append(f"PDM_ENV must be 'development' or 'production', not {env!r}")
    secret = str(config.get("SECRET_KEY") or "")
    if secret.strip().lower() in DEFAULT_SECRET_PLACEHOLDERS or len(secret) < 32:
        problems.append(
            "the secret key is missing, a placeholder or shorter than 32 characters: "
            "set PDM_SECRET_KEY or delete <instance>/secret_key to generate a new one"
        )
    backend = config.get("PDM_STORAGE_BACKEND")
    if backend not in {"local", "s3"}:
        problems.append(f"PDM_STORAGE_BACKEND must be 'local' or 's3', not {backend!r}")
    if backend == "s3" and not config.get("PDM_S3_BUCKET"):
        problems.append("PDM_STORAGE_BACKEND=s3 needs PDM_S3_BUCKET")
    if config.get("PDM_S3_LOCK_MODE") not in {"COMPLIANCE", "GOVERNANCE"}:
        problems.append("PDM_S3_LOCK_MODE must be COMPLIANCE or GOVERNANCE")
    if config.get("PDM_S3_GOVERNANCE_BYPASS") and config.get("PDM_S3_LOCK_MODE") != "GOVERNANCE":
        problems.append("PDM_S3_GOVERNANCE_BYPASS applies only with PDM_S3_LOCK_MODE=GOVERNANCE; "
                        "COMPLIANCE locks cannot be bypassed")
    try:
        re.compile(str(config.get("PDM_PATIENT_CODE_PATTERN")))
    except re.error as exc:
        problems.append(f"PDM_PATIENT_CODE_PATTERN is not a valid regular expression: {exc}")
    if int(config.get("PDM_MAX_UPLOAD_MB") or 0) <= 0:
        problems.append("PDM_MAX_UPLOAD_MB must be a positive number of MiB")
    for key in ("PDM_AUDIT_CHECKPOINT_EVERY", "PDM_AUDIT_CHECKPOINT_SECONDS"):
        if int(config.get(key) or 0) <= 0:
            problems.append(f"{key} must be a positive number")
    from .permissions import Role

    unknown_roles = sorted(mfa_required_roles(config) - {r.value for r in Role})
    if unknown_roles:
        problems.append(f"PDM_MFA_REQUIRED_ROLES names unknown roles: {', '.join(unknown_roles)}")
    for key in ("PDM_SESSION_IDLE_MINUTES", "PDM_SESSION_ABSOLUTE_HOURS",
                "PDM_LOCKOUT_THRESHOLD", "PDM_LOCKOUT_MINUTES"):
        if key in config and int(config.get(key) or 0) <= 0:
            problems.append(f"{key} must be a positive number")
    if int(config.get("PDM_TOKEN_EXPIRY_DAYS") or 0) <= 0:
        problems.append("PDM_TOKEN_EXPIRY_DAYS must be a positive number of days")
    problems.extend(retention_policy_problems(config))
    if env == "production" and str(config.get("PDM_DATABASE_URL", "")).startswith("sqlite"):
        # Allowed (day-one single machine), but worth saying in doctor; not a refusal.
        pass
    return problems


def retention_policy_problems(config: Mapping[str, Any]) -> list[str]:
    """Problems of the configured retention policy file (empty for a sound one or the default)."""
    from .retention import PolicyError, load_policy

    try:
        load_policy(config.get("PDM_RETENTION_POLICY"))
    except PolicyError as exc:
        return [f"PDM_RETENTION_POLICY: {p}" for p in exc.problems]
    return []
