"""What the OpenAPI document says about errors: every status an operation can answer, and the one
error body ``{"error", "message", "field_errors"}`` (``pdm_records.web.errors`` renders it).

There is no catch-all ``default`` response: each operation lists its statuses, so a client (and
schemathesis's ``status_code_conformance``) can rely on the list. The statuses every operation
shares follow from the code that produces them and are added by :class:`ApiBlueprint` when a
route is registered:

- 401 when the operation needs a bearer token, 403 when it needs more than being signed in
  (``@requires``);
- 404 when the path names a record;
- 400, 413 and 415 for POST, PUT and PATCH (``check_request_body``: malformed or too deeply
  nested JSON, a body above ``MAX_CONTENT_LENGTH``, a body that is neither JSON nor multipart);
- 503 everywhere (the database or the object store is unavailable; with ``Retry-After``).

What only some operations answer (409, 429, …) is declared on the route with
``@blp.errors(...)``; 422 comes with ``@blp.arguments``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from copy import deepcopy
from http import HTTPStatus
from typing import Any, TypeVar

from flask_smorest import Blueprint

from ..access import endpoint_permission
from ..permissions import Permission

F = TypeVar("F", bound=Callable[..., Any])

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
RETRY_AFTER = {"Retry-After": {
    "description": "Seconds to wait before trying again.", "required": True,
    "schema": {"type": "integer", "minimum": 1}}}

# The error responses of the document (components/responses, named like HTTPStatus).
ERROR_RESPONSES: dict[int, str] = {
    400: "The request cannot be read: malformed or too deeply nested JSON, a value out of "
         "range, or (search) an invalid filter; `field_errors` names the field when there is "
         "one.",
    401: "No valid bearer token (`Authorization: Bearer <token>`), or the account must first "
         "enrol two-factor authentication in the browser.",
    403: "Your role, or your relation to the record, does not allow this action.",
    404: "No such record, or it is not yours to see.",
    409: "Not possible in the record's current state; `message` says why.",
    413: "The body is larger than the upload limit (`PDM_MAX_UPLOAD_MB`).",
    415: "The body is neither `application/json` nor `multipart/form-data`.",
    422: "The input did not pass validation; `field_errors` names each field and what is wrong.",
    429: "Too many failed signing attempts for this account; nothing was checked. Wait "
         "`Retry-After` seconds.",
    500: "A stored file is missing or failed its SHA-256 integrity check (`stored_object_damaged`"
         "); it has been logged. Run `pdm verify-storage` or contact quality.",
    503: "The database, the object store or the signing key is unavailable; nothing was "
         "changed. Try again after `Retry-After` seconds.",
}
HEADERS: dict[int, dict[str, Any]] = {429: RETRY_AFTER, 503: RETRY_AFTER}


def response_name(status: int) -> str:
    return HTTPStatus(status).name


def standard_errors(rule: str, methods: Iterable[str], permission: Permission | None) -> list[int]:
    """The error statuses every operation of this shape answers (see the module docstring)."""
    statuses = []
    if permission is not Permission.PUBLIC:
        statuses.append(401)
        if permission is not Permission.AUTHENTICATED:
            statuses.append(403)
    if "<" in rule:
        statuses.append(404)
    if set(methods) & BODY_METHODS:
        statuses += [400, 413, 415]
    statuses.append(503)
    return statuses


def _add_responses(func: F, statuses: Iterable[int]) -> F:
    apidoc = deepcopy(getattr(func, "_apidoc", {}))
    responses = apidoc.setdefault("response", {}).setdefault("responses", {})
    declared = set(responses) | set(apidoc.get("arguments", {}).get("responses", {}))
    for status in statuses:
        if status not in declared:
            responses[status] = [response_name(status)]
    func._apidoc = apidoc  # type: ignore[attr-defined]
    return func


class ApiBlueprint(Blueprint):
    """A smorest blueprint whose operations document the error statuses they share."""

    def add_url_rule(self, rule: str, endpoint: str | None = None,
                     view_func: Callable[..., Any] | None = None,
                     provide_automatic_options: bool | None = None, **options: Any) -> None:
        if view_func is not None:
            methods = options.get("methods") or ("GET",)
            view_func = _add_responses(
                view_func, standard_errors(rule, methods, endpoint_permission(view_func)))
        super().add_url_rule(rule, endpoint, view_func, provide_automatic_options, **options)

    @staticmethod
    def errors(*statuses: int) -> Callable[[F], F]:
        """Document error statuses particular to this operation (e.g. 409, 429)."""

        def decorate(func: F) -> F:
            return _add_responses(func, statuses)

        return decorate
