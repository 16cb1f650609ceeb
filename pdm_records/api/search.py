"""Searching the records (quality staff): ``GET /api/v1/cases/search``."""

from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..access import require_actor, requires
from ..extensions import db
from ..permissions import Permission
from ..schemas.search import CaseSearchResultSchema, CaseSearchSchema, SearchFilters
from ..services.search import search_cases

PREFIX = "/cases"
blp = Blueprint("api_search", __name__, description="Searching the records (quality staff)")


@blp.route("/search", methods=["GET"])
@requires(Permission.VIEW_ALL_CASES)
@blp.arguments(CaseSearchSchema, location="query", error_status_code=400)
@blp.response(200, CaseSearchResultSchema)
@blp.alt_response(400, description="A filter is invalid; `field_errors` names it.")
def search(filters: SearchFilters) -> dict[str, Any]:
    """Search every case by case number or patient-code prefix, device type, category,
    implantability, clinician, institution, status, created and released date ranges, envelope
    version, latest verification result and retention state (legal hold, retain-until within
    N days); sorted by a whitelisted key, one page with the total."""
    result = search_cases(db.session, require_actor(), filters)
    return {"items": result.items, "page": result.page,
            "per_page": result.per_page, "pages": result.pages, "total": result.total,
            "sort": result.sort}
