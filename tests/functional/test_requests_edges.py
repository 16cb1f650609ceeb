"""Edges of the request workflow: who sees what, clearing fields, odd input, carried files."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import Notification, Site, SiteKind, User
from tests.conftest import PASSWORD, Accounts, csrf_token, table_counts
from tests.meshes import PDF, binary_stl
from tests.requests_support import CUSTOM_MADE, PATIENT_MATCHED, attach, bearer, common, create


def _clinician_at(app: Flask, accounts: Accounts, site_id: int, email: str) -> str:
    account = accounts.user("clinician", email=email)
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None
        user.site_id = site_id
        db.session.commit()
        from pdm_records.services.users import create_token

        _, token = create_token(db.session, actor=None, user=user, name="t", expiry_days=1)
        db.session.commit()
    return token


def test_a_clinician_prescribes_only_for_their_own_institution(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    with app.app_context():
        other = Site(name="Other Clinic", kind=SiteKind.HEALTH_INSTITUTION)
        db.session.add(other)
        db.session.commit()
        other_id = other.id
    token = _clinician_at(app, accounts, catalogue["hospital"], "at-hospital@example.org")
    payload = {**common(catalogue, "implant"), **PATIENT_MATCHED, "institution_id": other_id}
    before = table_counts(app)
    response = app.test_client().post("/api/v1/cases", json=payload, headers=bearer(token))
    assert response.status_code == 422
    assert "own institution" in response.get_json()["field_errors"]["institution_id"][0]
    assert table_counts(app) == before


def test_engineers_never_see_unsubmitted_drafts(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    engineer = accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    client = app.test_client()
    client.post(f"/api/v1/cases/{case['id']}/comments", json={"body": "note to self"},
                headers=bearer(clinician))
    cancelled = client.post(f"/api/v1/cases/{case['id']}/transitions",
                            json={"to": "cancelled", "reason": "duplicate"},
                            headers=bearer(clinician))
    assert cancelled.status_code == 200
    assert client.get(f"/api/v1/cases/{case['id']}", headers=bearer(engineer)).status_code == 404
    with app.app_context():
        engineer_user = db.session.query(User).filter_by(email="test-engineer@example.org").one()
        assert db.session.query(Notification).filter_by(user_id=engineer_user.id).count() == 0


def test_removed_draft_files_cannot_be_downloaded(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    attachment = attach(app, clinician, case["id"], PDF, "wrong-patient.pdf", "document")
    attachment_id = attachment.get_json()["id"]
    client = app.test_client()
    assert client.delete(f"/api/v1/cases/{case['id']}/attachments/{attachment_id}",
                         headers=bearer(clinician)).status_code == 204
    assert client.get(f"/api/v1/cases/{case['id']}/attachments/{attachment_id}/content",
                      headers=bearer(clinician)).status_code == 404


def test_a_correction_can_drop_a_carried_over_file_which_stays_on_record(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician, engineer = accounts.token("clinician"), accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    attach(app, clinician, case["id"], binary_stl(), "old.stl")
    client = app.test_client()
    client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                headers=bearer(clinician))
    client.post(f"/api/v1/cases/{case['id']}/transitions",
                json={"to": "changes_requested", "reason": "wrong scan"}, headers=bearer(engineer))
    draft = client.patch(f"/api/v1/cases/{case['id']}/request", json={},
                         headers=bearer(clinician)).get_json()
    carried = draft["revisions"][1]["attachments"][0]["id"]
    assert client.delete(f"/api/v1/cases/{case['id']}/attachments/{carried}",
                         headers=bearer(clinician)).status_code == 204
    detail = client.get(f"/api/v1/cases/{case['id']}", headers=bearer(clinician)).get_json()
    assert detail["revisions"][1]["attachments"] == []
    assert detail["revisions"][0]["attachments"][0]["original_name"] == "old.stl"
    assert detail["signatures"][0]["status"] == "valid"


def test_the_html_form_clears_what_the_clinician_empties(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    client = app.test_client()
    accounts.login(client, "clinician")
    token = accounts.token("clinician")
    case = create(app, token, {**common(catalogue, "custom"), **CUSTOM_MADE})
    url = f"/cases/{case['id']}/edit"
    form = {"csrf_token": csrf_token(client, url), "patient_code": "PAT-0001",
            "anatomical_site": "mandible", "side": "left", "intended_use": "x y z",
            "clinical_indication": "abc", "needed_by": "2030-01-15",
            "design_characteristics": "free text only", "justification": "no plate fits me",
            "exclusive_use_confirmed": "true", "contains_medicinal_substance": "false",
            "contains_human_or_animal_tissue": "false"}
    assert client.post(url, data=form).status_code == 302
    content = client.get(f"/api/v1/cases/{case['id']}", headers=bearer(token)).get_json()[
        "revisions"][0]["content"]
    assert "material" not in content and "design_parameters" not in content
    submitted = client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                            headers=bearer(token))
    assert submitted.status_code == 422  # a description alone is not a design characteristic
    assert "design_characteristics" in submitted.get_json()["field_errors"]


@pytest.mark.parametrize("path", [
    "/api/v1/cases/99999999999999999999999", "/api/v1/cases/9223372036854775808/comments",
])
def test_huge_ids_are_not_500(app: Flask, accounts: Accounts, path: str) -> None:
    token = accounts.token("clinician")
    client = app.test_client()
    response = (client.post(path, json={"body": "x"}, headers=bearer(token))
                if path.endswith("comments") else client.get(path, headers=bearer(token)))
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("field", ["device_type_id", "institution_id"])
def test_huge_ids_in_json_are_422(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                                  field: str) -> None:
    payload: dict[str, Any] = {**common(catalogue, "implant"), **PATIENT_MATCHED, field: 10**30}
    response = app.test_client().post("/api/v1/cases", json=payload,
                                      headers=bearer(accounts.token("clinician")))
    assert response.status_code == 422
    assert field in response.get_json()["field_errors"]


def test_huge_page_numbers_are_fine(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "quality")
    assert client.get("/cases/?page=99999999999999999999").status_code == 200


def test_control_characters_in_iteration_notes_are_refused(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    clinician, engineer = accounts.token("clinician"), accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    client = app.test_client()
    client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                headers=bearer(clinician))
    client.post(f"/api/v1/cases/{case['id']}/transitions", json={"to": "accepted"},
                headers=bearer(engineer))
    before = table_counts(app)
    response = client.post(f"/api/v1/cases/{case['id']}/iterations", headers=bearer(engineer),
                           data={"file": (io.BytesIO(binary_stl()), "d.stl"),
                                 "notes": "a\x00b"}, content_type="multipart/form-data")
    assert response.status_code == 422 and "notes" in response.get_json()["field_errors"]
    assert table_counts(app) == before


def test_an_illegal_step_in_the_browser_is_a_409_page(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    token = accounts.token("clinician")
    case = create(app, token, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    client = app.test_client()
    accounts.login(client, "clinician")
    response = client.post(f"/cases/{case['id']}/transition", data={
        "csrf_token": csrf_token(client, f"/cases/{case['id']}"), "to": "approved",
        "password": PASSWORD})
    assert response.status_code == 409
    assert "The case is draft; it cannot move to approved." in response.get_data(as_text=True)


def test_needed_by_in_the_past_is_refused_at_submission(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    token = accounts.token("clinician")
    case = create(app, token, {**common(catalogue, "implant"), **PATIENT_MATCHED,
                               "needed_by": "2020-01-01"})
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(token))
    assert response.status_code == 422
    assert "needed_by" in response.get_json()["field_errors"]
