"""One error vocabulary, two renderings (STYLE §7).

Domain errors, HTTP errors, storage outages and database outages become an HTML page for browser
routes and ``{"error", "message", "field_errors"}`` for ``/api/`` routes. Every error response
rolls the session back first, so nothing half-done is committed afterwards.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, jsonify, render_template, request
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..access import is_api_request
from ..errors import DomainError, ServiceUnavailable
from ..extensions import db
from ..schemas import flatten_messages
from ..storage import ObjectCorrupted, ObjectNotFound, StorageUnavailable

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
    415: "unsupported_media_type", 422: "validation_error", 429: "too_many_requests",
    500: "internal_error", 503: "service_unavailable",
}
TITLES = {
    400: "Bad request", 401: "Sign-in required", 403: "Not allowed", 404: "Not found",
    405: "Method not allowed", 409: "Not possible in the current state",
    413: "Too large", 415: "Unsupported type", 422: "Please correct the input",
    429: "Too many requests", 500: "Something went wrong", 503: "Temporarily unavailable",
}


def render_error(
    status: int, message: str, field_errors: dict[str, list[str]] | None = None,
    code: str | None = None, headers: dict[str, str] | None = None,
) -> Response:
    db.session.rollback()
    code = code or CODES.get(status, "error")
    if is_api_request():
        body = {"error": code, "message": message, "field_errors": field_errors or {}}
        response = jsonify(body)
    else:
        response = Response(render_template(
            "errors/error.html", status=status, title=TITLES.get(status, "Error"),
            message=message, field_errors=field_errors or {}), mimetype="text/html")
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def note_security_error(exc: DomainError) -> None:
    """Security events for refusals: failed signing authentication, permission denials."""
    from ..security.signing import note_signing_failure

    note_signing_failure(exc)
    if exc.status == 403:
        from ..access import current_actor
        from ..security.events import security_event

        actor = current_actor()
        security_event("permission.denied", outcome="failure",
                       user_id=actor.id if actor else None, endpoint=request.endpoint,
                       reason=exc.message)


def register_error_handlers(app: Flask) -> None:
    max_mb = app.config["PDM_MAX_UPLOAD_MB"]

    @app.errorhandler(DomainError)
    def domain_error(exc: DomainError) -> Response:
        if exc.status == 401 and not is_api_request():
            from flask import redirect, url_for

            db.session.rollback()
            return redirect(url_for("security.login", next=request.full_path))  # type: ignore[return-value]
        headers = {}
        if isinstance(exc, ServiceUnavailable):
            headers["Retry-After"] = str(exc.retry_after)
        response = render_error(exc.status, exc.message, exc.field_errors, exc.code, headers)
        note_security_error(exc)  # after the rollback: recorded in its own transaction
        return response

    @app.errorhandler(StorageUnavailable)
    def storage_down(exc: StorageUnavailable) -> Response:
        log.error("object store unavailable: %s", exc)
        return render_error(503, "The file store is unavailable; nothing was changed. "
                                 "Try again in a minute.", headers={"Retry-After": "30"})

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def database_down(exc: Exception) -> Response:
        log.error("database unavailable: %s", type(exc).__name__)
        return render_error(503, "The database is unavailable; nothing was changed. "
                                 "Try again in a minute.", headers={"Retry-After": "30"})

    @app.errorhandler(OverflowError)
    @app.errorhandler(sa.exc.DataError)
    def out_of_range(exc: Exception) -> Response:
        return render_error(400, "A number or value in the request is out of range.")

    @app.errorhandler(ObjectNotFound)
    @app.errorhandler(ObjectCorrupted)
    def damaged_object(exc: Exception) -> Response:
        log.error("stored object failed its check: %s", exc)
        return render_error(500, "A stored file is missing or failed its SHA-256 integrity check. "
                                 "It has been logged; run 'pdm verify-storage' or contact quality.",
                            code="stored_object_damaged")

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(exc: RequestEntityTooLarge) -> Response:
        return render_error(413, f"The upload is too large: the limit is {max_mb} MiB "
                                 "(PDM_MAX_UPLOAD_MB).")

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError) -> Response:
        return render_error(400, "The form expired or was sent from another site; "
                                 "reload the page and submit again.", code="csrf_failed")

    @app.errorhandler(RateLimitExceeded)
    def rate_limited(exc: RateLimitExceeded) -> Response:
        return render_error(429, str(exc.description), headers={"Retry-After": "60"})

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        status = exc.code or 500
        data: Any = getattr(exc, "data", None)
        field_errors: dict[str, list[str]] = {}
        message = exc.description or TITLES.get(status, "Error")
        if isinstance(data, dict) and "messages" in data:  # webargs / smorest validation
            field_errors = flatten_messages(data["messages"])
            message = "The request did not pass validation."
        if status == 404:
            message = "There is nothing at this address."
        if status == 405:
            message = f"{request.method} is not allowed here."
        return render_error(status, message, field_errors)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unhandled error")
        return render_error(500, "An unexpected error occurred; it has been logged. "
                                 "Nothing was saved.")
