"""Helpers for request tests: valid payloads per category and API calls."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def common(catalogue: dict[str, int], device: str) -> dict[str, Any]:
    return {"patient_code": "PAT-0001", "device_type_id": catalogue[device],
            "institution_id": catalogue["hospital"], "anatomical_site": "left orbital floor",
            "side": "left", "intended_use": "reconstruction of the orbital floor",
            "clinical_indication": "blow-out fracture", "needed_by": "2030-01-15"}


PATIENT_MATCHED = {"imaging_modality": "CT", "imaging_date": "2026-11-01",
                   "slice_thickness_mm": 0.625, "processing_applied": "none",
                   "requested_parameters": {"wall_thickness": 2.0}}
CUSTOM_MADE = {"design_parameters": {"plate_thickness": 2.0, "screw_count": 6},
               "material": "Ti-6Al-4V", "fixation": "6 x 2.0 mm screws, positions per sketch",
               "justification": "no marketed plate fits the resected contour",
               "exclusive_use_confirmed": True, "contains_medicinal_substance": False,
               "contains_human_or_animal_tissue": False}
ADAPTABLE = {"configuration": "size M, strap set B, within the instructions"}


def create(app: Flask, token: str, payload: dict[str, Any]) -> dict[str, Any]:
    response = app.test_client().post("/api/v1/cases", json=payload, headers=bearer(token))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def attach(app: Flask, token: str, case_id: int, data: bytes, name: str,
           kind: str = "model_3d") -> Any:
    return app.test_client().post(
        f"/api/v1/cases/{case_id}/attachments", headers=bearer(token),
        data={"file": (io.BytesIO(data), name), "kind": kind, "units": "mm"},
        content_type="multipart/form-data")


