"""Liveness/readiness for load balancers and monitoring."""

from __future__ import annotations

from typing import Any

from ..access import requires
from ..context import get_store
from ..extensions import db
from ..permissions import Permission
from ..schemas.responses import HealthSchema
from ..services.health import check_dependencies
from ..storage import StorageError
from .docs import RETRY_AFTER, ApiBlueprint

PREFIX = "/health"
blp = ApiBlueprint("api_health", __name__, description="Service health")


@blp.route("")
@requires(Permission.PUBLIC)
@blp.doc(security=[])
@blp.alt_response(200, schema=HealthSchema, success=True)
@blp.alt_response(503, schema=HealthSchema, headers=RETRY_AFTER,
                  description="The database or the object store cannot be reached; "
                              "`problems` says which.")
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
