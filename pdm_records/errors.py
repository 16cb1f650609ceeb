"""The product's error vocabulary. Services raise these; web and API render them.

Each error carries an HTTP status, a short machine code, a human message and optional per-field
messages. Views never build error responses by hand: the handlers in ``pdm_records.web.errors``
and ``pdm_records.api`` render the same exception as a page or as
``{"error", "message", "field_errors"}``.
"""

from __future__ import annotations


class DomainError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, field_errors: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field_errors = field_errors or {}


class ValidationError(DomainError):
    status = 422
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"


class Unauthorized(DomainError):
    status = 401
    code = "unauthorized"


class Conflict(DomainError):
    """The action is not allowed in the record's current state (Part 11 §11.10(f))."""

    status = 409
    code = "conflict"


class PayloadTooLarge(DomainError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(DomainError):
    status = 415
    code = "unsupported_media_type"


class ServiceUnavailable(DomainError):
    """The database or the object store cannot be reached; nothing was changed."""

    status = 503
    code = "service_unavailable"
    retry_after = 30
