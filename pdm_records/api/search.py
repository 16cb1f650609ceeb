"""Searching the records (quality staff): ``GET /api/v1/cases/search``."""

from __future__ import annotations

from typing import Any

from ..access import require_actor, requires
from ..extensions import db
from ..permissions import Permission
from ..schemas.search import CaseSearchResultSchema, CaseSearchSchema, SearchFilters
from ..services.search import search_cases
from .docs import ApiBlueprint

PREFIX = "/cases"
blp = ApiBlueprint("api_search", __name__, description="Searching the records (quality staff)")


@blp.route("/search", methods=["GET"])
@requires(Permission.VIEW_ALL_CASES)
@blp.arguments(CaseSearchSchema, location="query", error_status_code=400)
@blp.response(200, CaseSearchResultSchema)
def search(filters: SearchFilters) -> dict[str, Any]:
    """Search every case by case number or patient-code prefix, device type, category,
    implantability, clinician, institution, status, created and released date ranges, envelope
    version, latest verification result and retention state (legal hold, retain-until within
    N days); sorted by a whitelisted key, one page with the total."""
    result = search_cases(db.session, require_actor(), filters)
    return {"items": result.items, "page": result.page,
            "per_page": result.per_page, "pages": result.pages, "total": result.total,
            "sort": result.sort}
