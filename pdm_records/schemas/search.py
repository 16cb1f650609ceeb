"""The quality search's filters: validated once, here, for the HTML page and the JSON API.

Loading returns a typed :class:`SearchFilters`; the search service (``services/search.py``)
turns it into SQL. Only whitelisted sort keys exist, so no user input ever names a column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from ..models import CaseStatus, DeviceCategory, VerificationResult
from . import Text

# sort key → what it orders by (the service maps keys to columns); "-key" sorts descending.
SORT_KEYS = ("created_at", "number", "status", "released_at", "retain_until", "patient_code")
SORTS = tuple(k for key in SORT_KEYS for k in (key, f"-{key}"))
MAX_PER_PAGE = 100
ID_RANGE = validate.Range(min=1, max=2**31 - 1)
PREFIX = validate.Regexp(r"^([A-Za-z0-9][A-Za-z0-9-]*)?$",
                         error="Use letters, digits and hyphens only (a prefix is enough).")


@dataclass(frozen=True)
class SearchFilters:
    """What to search for; every field is optional (None: no condition)."""

    number: str | None = None  # case-number prefix
    patient_code: str | None = None  # pseudonymous patient-code prefix
    device_type_id: int | None = None
    category: DeviceCategory | None = None
    implantable: bool | None = None
    prescriber_id: int | None = None  # the clinician
    institution_id: int | None = None
    statuses: tuple[CaseStatus, ...] = ()
    created_from: date | None = None
    created_to: date | None = None  # inclusive
    released_from: date | None = None
    released_to: date | None = None  # inclusive
    envelope_version_id: int | None = None  # any verification used this envelope version
    verification: VerificationResult | None = None  # latest iteration's latest result
    on_hold: bool | None = None  # any of the case's objects under legal hold
    expiring_within_days: int | None = None  # retain-until between now and now + N days
    sort: str = "-created_at"
    page: int = 1
    per_page: int = 25

    def query_args(self) -> dict[str, Any]:
        """The filters as query-string arguments (for pagination and sort links)."""
        args: dict[str, Any] = {}
        for name in ("number", "patient_code", "device_type_id", "prescriber_id",
                     "institution_id", "created_from", "created_to", "released_from",
                     "released_to", "envelope_version_id", "expiring_within_days"):
            value = getattr(self, name)
            if value is not None:
                args[name] = value.isoformat() if isinstance(value, date) else value
        for name in ("category", "verification"):
            value = getattr(self, name)
            if value is not None:
                args[name] = value.value
        for name in ("implantable", "on_hold"):
            value = getattr(self, name)
            if value is not None:
                args[name] = "true" if value else "false"
        if self.statuses:
            args["status"] = [s.value for s in self.statuses]
        args["sort"] = self.sort
        args["per_page"] = self.per_page
        return args


class CaseSearchSchema(Schema):
    """Query arguments of ``GET /api/v1/cases/search`` and of the search page."""

    number = Text(validate=[validate.Length(max=20), PREFIX],
                  metadata={"description": "case number or its prefix, e.g. PDM-2026-00"})
    patient_code = Text(validate=[validate.Length(max=32), PREFIX],
                        metadata={"description": "pseudonymous patient code or its prefix"})
    device_type_id = fields.Integer(strict=False, validate=ID_RANGE)
    category = fields.String(validate=validate.OneOf(
        [c.value for c in DeviceCategory], error="Choose one of: {choices}."))
    implantable = fields.Boolean()
    prescriber_id = fields.Integer(strict=False, validate=ID_RANGE,
                                   metadata={"description": "the prescribing clinician"})
    institution_id = fields.Integer(strict=False, validate=ID_RANGE)
    status = fields.List(fields.String(validate=validate.OneOf(
        [s.value for s in CaseStatus], error="Unknown status {input}; choose from {choices}.")),
        validate=validate.Length(max=len(CaseStatus)),
        metadata={"description": "repeat for several statuses (any of them)"})
    created_from = fields.Date(metadata={"description": "created on or after (UTC date)"})
    created_to = fields.Date(metadata={"description": "created on or before (UTC date)"})
    released_from = fields.Date()
    released_to = fields.Date()
    envelope_version_id = fields.Integer(
        strict=False, validate=ID_RANGE,
        metadata={"description": "a design of the case was verified against this version"})
    verification = fields.String(
        validate=validate.OneOf([v.value for v in VerificationResult],
                                error="Choose one of: {choices}."),
        metadata={"description": "the latest design iteration's latest verification"})
    on_hold = fields.Boolean(metadata={"description": "any record object under legal hold"})
    expiring_within_days = fields.Integer(
        strict=False, validate=validate.Range(min=0, max=36500),
        metadata={"description": "retain-until falls within the next N days"})
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(
        SORTS, error="Sort by one of: {choices}."))
    page = fields.Integer(load_default=1, strict=False,
                          validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=25, strict=False,
                              validate=validate.Range(min=1, max=MAX_PER_PAGE))

    @validates_schema
    def _ranges(self, data: dict[str, Any], **_: Any) -> None:
        for name in ("created", "released"):
            low, high = data.get(f"{name}_from"), data.get(f"{name}_to")
            if low and high and low > high:
                raise ValidationError(f"The end of the range is before its start ({low}).",
                                      f"{name}_to")

    @post_load
    def _filters(self, data: dict[str, Any], **_: Any) -> SearchFilters:
        statuses = tuple(dict.fromkeys(CaseStatus(s) for s in data.pop("status", None) or ()))
        category = data.pop("category", None)
        verification = data.pop("verification", None)
        for name in ("number", "patient_code"):
            data[name] = data.get(name) or None  # an empty prefix is no condition
        values: dict[str, Any] = data
        return SearchFilters(
            **values,
            statuses=statuses,
            category=DeviceCategory(category) if category else None,
            verification=VerificationResult(verification) if verification else None)


class CaseHitSchema(Schema):
    id = fields.Integer()
    number = fields.String()
    status = fields.String()
    patient_code = fields.String()
    device_type = fields.String()
    category = fields.String()
    implantable = fields.Boolean()
    institution = fields.String()
    prescriber = fields.String()
    created_at = fields.DateTime()
    released_at = fields.DateTime(allow_none=True)
    retain_until = fields.DateTime(allow_none=True)
    verification = fields.String()
    on_hold = fields.Boolean()


class CaseSearchResultSchema(Schema):
    items = fields.List(fields.Nested(CaseHitSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    pages = fields.Integer()
    total = fields.Integer()
    sort = fields.String()
