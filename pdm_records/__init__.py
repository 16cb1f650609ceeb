"""pdm-records: record keeper for personalized medical devices.

:func:`create_app` is the only place that wires things together (STYLE §1). Imports happen inside
it so that ``pdm_records.geometry`` and ``pdm_records.storage`` stay usable without Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

__version__ = "0.1.0"


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application.

    ``config`` overrides every other source (tests use it). A web server started on a production
    configuration with problems refuses to start (:class:`~pdm_records.config.ConfigurationError`);
    CLI commands start anyway and ``pdm doctor`` reports the problems.
    """
    import os
    from pathlib import Path

    from flask import Flask

    from . import cli, extensions
    from .config import ConfigurationError, load_settings
    from .storage import make_store
    from .web import register_web

    instance_path = os.environ.get("PDM_INSTANCE_PATH")
    app = Flask(__name__, template_folder="web/templates", static_folder="web/static",
                instance_path=str(Path(instance_path).resolve()) if instance_path
                else None, instance_relative_config=True)
    from .converters import RowId

    app.url_map.converters["int"] = RowId
    settings, problems = load_settings(Path(app.instance_path), overrides=config)
    app.config.update(settings)
    app.extensions["pdm_config_problems"] = problems
    from .security.events import configure_security_log, security_event

    try:
        configure_security_log(str(app.config["PDM_SECURITY_LOG"]))
    except OSError as exc:
        configure_security_log("stderr")
        problems.append(f"PDM_SECURITY_LOG cannot be opened ({exc.strerror}); using stderr")
    for problem in problems:
        security_event("configuration.error", outcome="failure", problem=problem)
    if problems and app.config["PDM_ENV"] == "production" and _is_serving():
        raise ConfigurationError(problems)
    from .retention import PolicyError, load_policy

    try:
        app.extensions["pdm_retention_policy"] = load_policy(app.config["PDM_RETENTION_POLICY"])
    except PolicyError as exc:
        # Retention is the product's promise: no server or worker runs on a broken policy, in
        # any environment. Other commands start; `pdm doctor` reports it, and every action that
        # needs the policy refuses (services.retention.current_policy).
        app.extensions["pdm_retention_policy"] = None
        if _is_serving():
            raise ConfigurationError([f"PDM_RETENTION_POLICY: {p}" for p in exc.problems]) \
                from exc

    proxies = int(app.config["PDM_PROXY_COUNT"])
    if proxies > 0:
        # Behind a TLS reverse proxy: trust its X-Forwarded-For/Proto/Host (rate limits per
        # client address, HSTS and secure URLs depend on them).
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)

    extensions.db.init_app(app)
    extensions.migrate.init_app(app, extensions.db, directory=str(_migrations_dir()))
    extensions.csrf.init_app(app)
    extensions.limiter.init_app(app)
    _init_security(app)

    app.extensions["pdm_store_factory"] = lambda: make_store(app.config)

    from .api import register_api

    register_api(app)
    register_web(app)
    cli.register(app)
    return app


def _migrations_dir() -> Any:
    from pathlib import Path

    return Path(__file__).resolve().parent.parent / "migrations"


def _is_serving() -> bool:
    """True under a WSGI server (no click context) or ``flask run``; False for other commands."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    return ctx.info_name in {"run", "worker"}


def _init_security(app: Flask) -> None:
    from flask_security import SQLAlchemyUserDatastore

    from .extensions import db, limiter, security
    from .models import RoleRow, User
    from .security.mfa import register_enrolment_guard
    from .security.sessions import register_session_timeouts
    from .security.signing import register_signing_limit

    datastore = SQLAlchemyUserDatastore(db, User, RoleRow)
    security.init_app(app, datastore)
    register_session_timeouts(app)
    register_enrolment_guard(app)
    register_signing_limit(app)
    # Rate-limit login attempts per client address (IMDRF N60: authentication hardening).
    # A before-request check (not a decorator) so the limit is read from the current app.
    from flask import current_app, request

    @app.before_request
    def limit_login_attempts() -> None:
        if request.method == "POST" and request.endpoint in (
                "security.login", "security.two_factor_token_validation",
                "security.mf_recovery"):
            with limiter.limit(
                current_app.config["PDM_LOGIN_RATE_LIMIT"],
                error_message="Too many sign-in attempts; wait a minute and try again.",
            ):
                pass
