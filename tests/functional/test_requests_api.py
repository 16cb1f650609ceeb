"""Design requests through the API: create, attach, sign and submit, accept (DOMAIN.md §3)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from pdm_records.extensions import db
from tests.conftest import PASSWORD, Accounts, object_count, table_counts
from tests.meshes import PDF, ascii_stl, binary_stl, zip_bomb
from tests.requests_support import (
    ADAPTABLE,
    CUSTOM_MADE,
    PATIENT_MATCHED,
    attach,
    bearer,
    common,
    create,
)


@pytest.mark.parametrize(("device", "extra"), [
    ("implant", PATIENT_MATCHED), ("custom", CUSTOM_MADE), ("adaptable", ADAPTABLE)])
def test_each_category_is_created_attached_signed_submitted_and_accepted(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], device: str,
        extra: dict[str, Any]) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, device), **extra})
    assert case["status"] == "draft" and case["number"].startswith("PDM-")
    assert attach(app, clinician, case["id"], binary_stl(), "plan.stl").status_code == 201
    assert attach(app, clinician, case["id"], PDF, "sketch.pdf", "document").status_code == 201
    client = app.test_client()
    wrong = client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": "wrong one!"},
                        headers=bearer(clinician))
    assert wrong.status_code == 422 and "password" in wrong.get_json()["field_errors"]
    submitted = client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                            headers=bearer(clinician))
    assert submitted.status_code == 200, submitted.get_json()
    body = submitted.get_json()
    assert body["status"] == "submitted"
    [signature] = body["signatures"]
    assert signature["meaning"] == "authored" and signature["status"] == "valid"
    assert signature["printed_name"] == "Test Clinician"
    assert all(a["state"] == "record" for a in body["revisions"][0]["attachments"])
    engineer = accounts.token("engineer")
    accepted = client.post(f"/api/v1/cases/{case['id']}/transitions", json={"to": "accepted"},
                           headers=bearer(engineer))
    assert accepted.status_code == 200, accepted.get_json()
    history = [(h["from"], h["to"]) for h in accepted.get_json()["history"]]
    assert history == [(None, "draft"), ("draft", "submitted"), ("submitted", "accepted")]


def test_custom_made_with_only_an_upload_is_refused(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    only_upload = {k: v for k, v in CUSTOM_MADE.items()
                   if k not in ("design_parameters", "material", "fixation")}
    case = create(app, clinician, {**common(catalogue, "custom"), **only_upload})
    assert attach(app, clinician, case["id"], binary_stl(), "scan.stl").status_code == 201
    before = table_counts(app)
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(clinician))
    assert response.status_code == 422
    message = response.get_json()["field_errors"]["design_characteristics"][0]
    assert "MDCG 2021-3 Q6" in message and "mesh alone" in message
    assert table_counts(app) == before


@pytest.mark.parametrize(("data", "name", "kind", "fragment"), [
    (b"", "empty.stl", "model_3d", "empty"),
    (binary_stl()[:200], "truncated.stl", "model_3d", "STL"),
    (binary_stl(np_nan := __import__("numpy").array(
        [[0, 0, 0], [1, 0, 0], [float("nan"), 1, 0]], dtype=float),
        __import__("numpy").array([[0, 1, 2]])), "nan.stl", "model_3d", "STL"),
    (PDF, "model.stl", "model_3d", "STL"),
    (binary_stl(), "model.exe", "model_3d", "must be one of"),
    (ascii_stl(), "sketch.pdf", "document", "not PDF"),
    (zip_bomb(), "bomb.3mf", "model_3d", "zip bomb"),
    (zip_bomb("scan/../../etc/passwd", 1000), "imaging.zip", "imaging", "unsafe path"),
])
def test_hostile_uploads_are_refused_and_change_nothing(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], data: bytes, name: str,
        kind: str, fragment: str) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    rows, objects = table_counts(app), object_count(app)
    response = attach(app, clinician, case["id"], data, name, kind)
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert fragment in body["field_errors"]["file"][0], body
    assert table_counts(app) == rows
    assert object_count(app) == objects


def test_oversized_upload_is_413_and_changes_nothing(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    rows, objects = table_counts(app), object_count(app)
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    # Encoded in memory: the test client would spool a large body to a temporary file that it
    # leaves open when the app refuses the request unread (a test-side ResourceWarning).
    boundary, body = encode_multipart({
        "file": FileStorage(io.BytesIO(b"solid " + b"x" * (2 * 1024 * 1024)), "a.stl"),
        "kind": "model_3d", "units": "mm"})
    response = app.test_client().post(
        f"/api/v1/cases/{case['id']}/attachments", headers=bearer(clinician), data=body,
        content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 413
    assert "1 MiB" in response.get_json()["message"]
    assert (table_counts(app), object_count(app)) == (rows, objects)


def test_path_traversal_filename_is_kept_as_a_display_name_only(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    response = attach(app, clinician, case["id"], binary_stl(), "../../../etc/cron.d/x.stl")
    assert response.status_code == 201
    assert response.get_json()["original_name"] == "x.stl"


def test_clinicians_cannot_see_each_others_cases(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    mine = accounts.token("clinician")
    case = create(app, mine, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    other_account = accounts.user("clinician", email="other.clinician@example.org")
    with app.app_context():
        from pdm_records.models import User
        from pdm_records.services.users import create_token

        other_user = db.session.get(User, other_account.id)
        assert other_user is not None
        _, other = create_token(db.session, actor=None, user=other_user, name="t", expiry_days=1)
        db.session.commit()
    client = app.test_client()
    assert client.get(f"/api/v1/cases/{case['id']}", headers=bearer(other)).status_code == 404
    listed = client.get("/api/v1/cases", headers=bearer(other)).get_json()
    assert listed["total"] == 0
    assert client.get("/api/v1/cases", headers=bearer(mine)).get_json()["total"] == 1
    admin = accounts.token("admin")
    assert client.get("/api/v1/cases", headers=bearer(admin)).status_code == 403


def test_patient_code_pattern_is_quoted(app: Flask, accounts: Accounts,
                                        catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    payload = {**common(catalogue, "implant"), **PATIENT_MATCHED, "patient_code": "John Smith"}
    response = app.test_client().post("/api/v1/cases", json=payload, headers=bearer(clinician))
    assert response.status_code == 422
    message = response.get_json()["field_errors"]["patient_code"][0]
    assert app.config["PDM_PATIENT_CODE_PATTERN"] in message


def test_zip_limits_come_from_configuration(app: Flask, accounts: Accounts,
                                            catalogue: dict[str, int]) -> None:
    import zipfile

    app.config["PDM_ZIP_MAX_RATIO"] = 2
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("scan/slice-001.dcm", b"\x00" * 20000)
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    response = attach(app, clinician, case["id"], buffer.getvalue(), "export.zip", "imaging")
    assert response.status_code == 422
    assert "more than 2:1" in response.get_json()["field_errors"]["file"][0]
    app.config["PDM_ZIP_MAX_RATIO"] = 1000
    assert attach(app, clinician, case["id"], buffer.getvalue(), "export.zip",
                  "imaging").status_code == 201
