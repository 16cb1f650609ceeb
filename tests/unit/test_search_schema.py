"""The search filters are validated once (STYLE §8) and survive a round trip through the links
the search page builds (pagination and sort links keep every filter)."""

from __future__ import annotations

from datetime import date

import pytest
from marshmallow import ValidationError

from pdm_records.models import CaseStatus, DeviceCategory, VerificationResult
from pdm_records.schemas.search import SORTS, CaseSearchSchema, SearchFilters


def test_defaults_are_no_condition() -> None:
    filters = CaseSearchSchema().load({})
    assert filters == SearchFilters()
    assert filters.sort == "-created_at" and filters.page == 1 and filters.per_page == 25


def test_a_full_query_round_trips_through_its_link_arguments() -> None:
    raw = {"number": "PDM-2026", "patient_code": "kx-1", "device_type_id": "3",
           "category": "patient_matched", "implantable": "false", "prescriber_id": "7",
           "institution_id": "2", "status": ["released", "delivered", "released"],
           "created_from": "2026-01-01", "created_to": "2026-06-30",
           "released_from": "2026-02-01", "released_to": "2026-07-01",
           "envelope_version_id": "4", "verification": "failed", "on_hold": "true",
           "expiring_within_days": "90", "sort": "-retain_until", "page": "3",
           "per_page": "50"}
    filters = CaseSearchSchema().load(raw)
    assert filters.statuses == (CaseStatus.RELEASED, CaseStatus.DELIVERED)  # duplicates once
    assert filters.category is DeviceCategory.PATIENT_MATCHED
    assert filters.verification is VerificationResult.FAILED
    assert filters.implantable is False and filters.on_hold is True
    assert filters.created_to == date(2026, 6, 30) and filters.device_type_id == 3
    again = CaseSearchSchema().load({**filters.query_args(), "page": 3})
    assert again == filters


def test_only_whitelisted_sorts() -> None:
    assert "-patient_code" in SORTS and "id" not in SORTS
    with pytest.raises(ValidationError) as caught:
        CaseSearchSchema().load({"sort": "password"})
    assert "sort" in caught.value.messages


def test_an_empty_prefix_is_no_condition() -> None:
    assert CaseSearchSchema().load({"patient_code": "  "}).patient_code is None
