"""HTML pages: one blueprint per user area, server-rendered, no inline script."""

from __future__ import annotations

from typing import Any

from flask import Flask

from ..access import actor_permissions, current_actor
from ..permissions import Permission
from .errors import register_error_handlers
from .security_headers import register_security_headers


def register_web(app: Flask) -> None:
    from . import account, admin, cases, envelopes, main, previews, records, retention

    app.register_blueprint(main.bp)
    app.register_blueprint(admin.bp, url_prefix="/admin")
    app.register_blueprint(account.bp, url_prefix="/account")
    app.register_blueprint(cases.bp, url_prefix="/cases")
    app.register_blueprint(envelopes.bp, url_prefix="/envelopes")
    app.register_blueprint(records.bp, url_prefix="/cases")  # search, dossier (quality)
    app.register_blueprint(previews.bp, url_prefix="/cases")  # 3D previews of iterations
    app.register_blueprint(retention.bp, url_prefix="/retention")
    register_error_handlers(app)
    register_security_headers(app)

    @app.context_processor
    def inject() -> dict[str, Any]:
        actor = current_actor()
        return {
            "actor": actor,
            "perms": actor_permissions(actor),
            "Permission": Permission,
            "site_name": app.config["PDM_SITE_NAME"],
        }
