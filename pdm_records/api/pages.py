"""Pagination of API lists: ``{"items", "page", "per_page", "total"}``."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from sqlalchemy import Select

from ..extensions import db


def page_of(query: Select[Any], args: dict[str, Any], schema: Schema) -> dict[str, Any]:
    page = db.paginate(query, page=args["page"], per_page=args["per_page"], error_out=False)
    return {
        "items": schema.dump(page.items, many=True),
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
    }
