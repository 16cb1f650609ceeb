"""Liveness/readiness for load balancers and monitoring."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..access import requires
from ..context import get_store
from ..extensions import db
from ..permissions import Permission
from ..services.health import check_dependencies
from ..storage import StorageError

PREFIX = "/health"
blp = Blueprint("api_health", __name__, description="Service health")


@blp.route("")
@requires(Permission.PUBLIC)
@blp.doc(security=[])
def health() -> tuple[dict[str, Any], int, dict[str, str]] | dict[str, Any]:
    """Database and object store reachability (503 when either is down)."""
    try:
        store = get_store()
    except StorageError:
        store = None
    problems = check_dependencies(db.session, store)
    if problems:
        return {"status": "unavailable", "problems": problems}, 503, {"Retry-After": "30"}
    return {"status": "ok", "problems": []}
