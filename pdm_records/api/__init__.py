"""The JSON API under ``/api/v1``: bearer tokens, OpenAPI 3 at ``/api/v1/openapi.json``.

Errors are rendered by ``pdm_records.web.errors`` in the one shape
``{"error", "message", "field_errors"}``; flask-smorest's own handler is switched off.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Flask, request
from flask_smorest import Api
from flask_smorest.utils import prepare_response

from ..errors import DomainError, UnsupportedMediaType
from ..extensions import api, csrf
from ..schemas import ErrorSchema, Text
from .docs import ERROR_RESPONSES, HEADERS, response_name


class _Api(Api):
    # The one error body, and no catch-all "default" response: each operation lists its
    # statuses (api/docs.py).
    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None

    def _register_error_handlers(self) -> None:  # pragma: no cover - trivial override
        """Errors are rendered by the application's handlers, not smorest's."""

    def _register_responses(self) -> None:
        """The error responses operations refer to (registered lazily: only those used)."""
        for status, description in ERROR_RESPONSES.items():
            response: dict[str, Any] = {"description": description, "schema": ErrorSchema}
            if status in HEADERS:
                response["headers"] = HEADERS[status]
            prepare_response(response, self.spec, self.DEFAULT_RESPONSE_CONTENT_TYPE)
            self.spec.components.response(response_name(status), response, lazy=True)


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
    api.ma_plugin.converter.add_attribute_function(text_pattern)
    app.before_request(check_request_body)
    for module in (health, me, users, tokens, catalogue, search, cases, notifications,
                   envelopes, packages):
        blp: Any = module.blp
        csrf.exempt(blp)  # the API authenticates by bearer token only, never by cookie
        api.register_blueprint(blp, url_prefix="/api/v1" + module.PREFIX)


def text_pattern(self: Any, field: Any, ret: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Document what a :class:`~pdm_records.schemas.Text` field accepts (a stricter pattern of
    its own, e.g. a case-number prefix, stays)."""
    if isinstance(field, Text) and "pattern" not in ret:
        return {"pattern": field.json_pattern()}
    return {}


def check_request_body() -> None:
    """Refuse bodies the API does not read, before any view parses them: a body that is
    neither JSON nor multipart (415: it would otherwise read as an empty request, e.g. an
    empty PATCH that saves nothing yet succeeds), and JSON nested so deeply that parsing it
    would exhaust the interpreter's stack (400 rather than a 500)."""
    if (request.method not in ("POST", "PUT", "PATCH") or not request.content_length
            or not request.path.startswith("/api/")):
        return
    if not request.is_json and request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            "Send the body as application/json (uploads: multipart/form-data).")
    if request.is_json:
        try:
            json.loads(request.get_data(cache=True))
        except RecursionError as exc:
            raise DomainError("The JSON body is nested too deeply.") from exc  # 400
        except ValueError:
            return  # malformed JSON: the view's parser reports it
