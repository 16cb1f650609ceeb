"""Every required field of each request category is required at submission (MDR Annex XIII §1;
MDCG 2021-3 Q6–Q7; FDA AM guidance §V.B)."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from pdm_records.schemas.requests import SCHEMAS

COMMON = {"patient_code": "PAT-0001", "device_type_id": 1, "institution_id": 1,
          "anatomical_site": "mandible", "side": "left", "intended_use": "reconstruction",
          "clinical_indication": "resection", "needed_by": "2030-01-01"}
VALID: dict[str, dict[str, Any]] = {
    "custom_made": {**COMMON, "design_parameters": {"plate_thickness": 2.0},
                    "justification": "no marketed plate fits", "exclusive_use_confirmed": True,
                    "contains_medicinal_substance": False,
                    "contains_human_or_animal_tissue": False},
    "patient_matched": {**COMMON, "imaging_modality": "CT", "imaging_date": "2026-11-01",
                        "slice_thickness_mm": 0.6},
    "adaptable": {**COMMON, "configuration": "size M within the instructions"},
}
REQUIRED = {
    "custom_made": ["justification", "exclusive_use_confirmed", "contains_medicinal_substance",
                    "contains_human_or_animal_tissue"],
    "patient_matched": ["imaging_modality", "imaging_date", "slice_thickness_mm"],
    "adaptable": ["configuration"],
}
CASES = [(category, field) for category, fields in REQUIRED.items()
         for field in [*COMMON, *fields]]


@pytest.mark.parametrize("category", list(SCHEMAS))
def test_a_complete_request_is_accepted(category: str) -> None:
    SCHEMAS[category]().load(VALID[category])


@pytest.mark.parametrize(("category", "field"), CASES)
def test_each_required_field_is_required(category: str, field: str) -> None:
    payload = {k: v for k, v in VALID[category].items() if k != field}
    with pytest.raises(ValidationError) as info:
        SCHEMAS[category]().load(payload)
    assert field in info.value.messages  # type: ignore[operator]
    SCHEMAS[category](partial=True).load(payload)  # a draft may be incomplete


def test_custom_made_without_design_characteristics_is_refused_with_the_reason() -> None:
    payload = {k: v for k, v in VALID["custom_made"].items() if k != "design_parameters"}
    with pytest.raises(ValidationError) as info:
        SCHEMAS["custom_made"]().load(payload)
    message = info.value.messages["design_characteristics"][0]  # type: ignore[index]
    assert "MDCG 2021-3 Q6" in message


def test_custom_made_needs_the_exclusive_use_statement() -> None:
    with pytest.raises(ValidationError) as info:
        SCHEMAS["custom_made"]().load({**VALID["custom_made"], "exclusive_use_confirmed": False})
    assert "exclusive_use_confirmed" in info.value.messages  # type: ignore[operator]


@pytest.mark.parametrize("text", ['O\'Brien "quoted" <b>', "Zoë Ünal–Søren", "a & b"])
def test_valid_text_is_kept_verbatim(text: str) -> None:
    loaded = SCHEMAS["adaptable"]().load({**VALID["adaptable"], "anatomical_site": text})
    assert loaded["anatomical_site"] == text
