"""The JSON API under ``/api/v1``: bearer tokens, OpenAPI 3 at ``/api/v1/openapi.json``.

Errors are rendered by ``pdm_records.web.errors`` in the one shape
``{"error", "message", "field_errors"}``; flask-smorest's own handler is switched off.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_smorest import Api

from ..extensions import api, csrf


class _Api(Api):  # pragma: no cover - trivial override
    def _register_error_handlers(self) -> None:
        """Errors are rendered by the application's handlers, not smorest's."""


def register_api(app: Flask) -> None:
    from . import (
        cases,
        catalogue,
        envelopes,
        health,
        me,
        notifications,
        packages,
        search,
        tokens,
        users,
    )

    # Swap in the subclass without handlers (the module-level object is created unbound).
    api.__class__ = _Api
    api.init_app(app, spec_kwargs={
        "info": {"description": "pdm-records JSON API. Authenticate with "
                                "`Authorization: Bearer <token>` (see `pdm create-token`)."},
    })
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "pdm token"}
    )
    api.spec.options["security"] = [{"bearerAuth": []}]
    for module in (health, me, users, tokens, catalogue, search, cases, notifications,
                   envelopes, packages):
        blp: Any = module.blp
        csrf.exempt(blp)  # the API authenticates by bearer token only, never by cookie
        api.register_blueprint(blp, url_prefix="/api/v1" + module.PREFIX)
