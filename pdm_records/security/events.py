"""Security events as structured JSON lines (DOMAIN.md §8: logging of security-relevant events).

One logger, ``pdm_records.security``, one JSON object per line: ``ts`` (UTC ISO 8601),
``event``, ``outcome`` and the event's fields, plus the request's client address, method and
path when there is a request. Where the lines go is ``PDM_SECURITY_LOG``: ``stderr`` (default), a
file path, or ``off``.

Never logged: passwords, TOTP codes or secrets, recovery codes, tokens, session contents or file
contents. :func:`security_event` drops any field whose name says it holds one, and values are
short scalars (long strings are cut).
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from ..clock import utcnow

LOGGER_NAME = "pdm_records.security"
log = logging.getLogger(LOGGER_NAME)

# Field names that could carry a secret; such fields are never written, whatever the caller says.
FORBIDDEN_FIELDS = ("password", "secret", "token", "code", "totp", "otp", "cookie", "session",
                    "content", "body", "key")
MAX_VALUE_LENGTH = 200


class JsonLineFormatter(logging.Formatter):
    """Formats a record made by :func:`security_event` as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        data = getattr(record, "pdm_event", None)
        if not isinstance(data, dict):
            data = {"ts": utcnow().isoformat(), "event": "log", "message": record.getMessage()}
        return json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)


def _clean(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, list | tuple):
        return [_clean(v) for v in list(value)[:20]]
    text = str(value)
    return text if len(text) <= MAX_VALUE_LENGTH else text[:MAX_VALUE_LENGTH] + "…"


def _allowed(name: str) -> bool:
    lowered = name.lower()
    return not any(word in lowered for word in FORBIDDEN_FIELDS)


def security_event(event: str, *, outcome: str = "success", level: int = logging.INFO,
                   **fields: Any) -> dict[str, Any]:
    """Write one security event. Returns what was written (for tests and callers that echo it).

    ``event`` is a dotted name (``signin.failure``, ``permission.denied``, ``export`` …);
    ``fields`` are identifiers and facts (user id, e-mail, case id, reason), never secrets.
    """
    data: dict[str, Any] = {"ts": utcnow().isoformat(), "event": event, "outcome": outcome}
    data.update({k: _clean(v) for k, v in fields.items() if _allowed(k)})
    try:
        from flask import has_request_context, request

        if has_request_context():
            data.setdefault("client", request.remote_addr)
            data.setdefault("method", request.method)
            data.setdefault("path", request.path[:MAX_VALUE_LENGTH])
    except ImportError:  # pragma: no cover - Flask is a dependency; pure callers still work
        pass
    log.log(level, event, extra={"pdm_event": data})
    return data


def log_export(*, actor_id: int | None, actor_email: str | None, what: str,
               target_type: str, target_id: object, size: int | None = None,
               sha256: str | None = None) -> dict[str, Any]:
    """Record that records left the system (a download, an audit package, a dossier).

    Call it from any code that hands out record content; ``what`` says which kind
    (``attachment``, ``audit_package`` …). The content itself is never logged.
    """
    return security_event("export", actor_id=actor_id, actor_email=actor_email, what=what,
                          target_type=target_type, target_id=target_id, size=size,
                          sha256=sha256)


def configure_security_log(destination: str) -> None:
    """Point the security logger at ``stderr``, a file, or nowhere (``off``).

    Idempotent: handlers this function added before are replaced (tests build many apps).
    """
    for old in list(log.handlers):
        if getattr(old, "pdm_security", False):
            log.removeHandler(old)
            old.close()
    log.setLevel(logging.INFO)
    log.propagate = False
    where = (destination or "stderr").strip()
    if where.lower() == "off":
        log.addHandler(_marked(logging.NullHandler()))
        return
    handler: logging.Handler
    if where.lower() == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        handler = logging.FileHandler(where, encoding="utf-8")
    handler.setFormatter(JsonLineFormatter())
    log.addHandler(_marked(handler))


def _marked(handler: logging.Handler) -> logging.Handler:
    handler.pdm_security = True  # type: ignore[attr-defined]
    return handler
