"""The clinician's journey in the browser: form, errors kept, attach, sign, submit."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask

from tests.conftest import PASSWORD, Accounts, csrf_token
from tests.meshes import binary_stl


def test_clinician_journey(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    client = app.test_client()
    accounts.login(client, "clinician")
    url = f"/cases/new/{catalogue['guide']}"
    form = {"csrf_token": csrf_token(client, url), "patient_code": "bad code!",
            "institution_id": str(catalogue["hospital"]), "anatomical_site": "tibia",
            "clinical_indication": "osteotomy <planning>", "requested_parameters:wall_thickness":
            "abc"}
    refused = client.post(url, data=form)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert 'value="bad code!"' in page and "osteotomy &lt;planning&gt;" in page
    assert "Enter a number." in page
    form.update({"patient_code": "PAT-77", "requested_parameters:wall_thickness": "3,5",
                 "side": "right", "intended_use": "drilling guide", "needed_by": "2030-02-01",
                 "imaging_modality": "CBCT", "imaging_date": "2026-10-01",
                 "slice_thickness_mm": "0.3"})
    created = client.post(url, data=form)
    assert created.status_code == 302
    case_url = created.headers["Location"]
    case_id = int(re.search(r"/cases/(\d+)", case_url).group(1))  # type: ignore[union-attr]
    token = csrf_token(client, case_url)
    uploaded = client.post(f"/cases/{case_id}/attachments", data={
        "csrf_token": token, "file": (io.BytesIO(binary_stl()), "guide.stl"),
        "kind": "model_3d", "units": "mm"}, content_type="multipart/form-data",
        follow_redirects=True)
    assert "guide.stl attached." in uploaded.get_data(as_text=True)
    bad = client.post(f"/cases/{case_id}/attachments", data={
        "csrf_token": token, "file": (io.BytesIO(b"not a pdf"), "report.pdf"),
        "kind": "document"}, content_type="multipart/form-data", follow_redirects=True)
    assert "not PDF" in bad.get_data(as_text=True)
    wrong = client.post(f"/cases/{case_id}/transition", data={
        "csrf_token": token, "to": "submitted", "password": "nope nope nope"},
        follow_redirects=True)
    assert "The password is not correct; nothing was signed." in wrong.get_data(as_text=True)
    signed = client.post(f"/cases/{case_id}/transition", data={
        "csrf_token": token, "to": "submitted", "password": PASSWORD}, follow_redirects=True)
    page = signed.get_data(as_text=True)
    assert "is now submitted" in page
    assert "Test Clinician" in page and "authored" in page and "valid" in page
    assert "3.5" in page
    listing = client.get("/cases/?status=submitted").get_data(as_text=True)
    assert "PAT-77" in listing


def test_case_pages_are_private_unless_the_institution_shares(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    from pdm_records.extensions import db
    from pdm_records.models import User
    from tests.requests_support import PATIENT_MATCHED, common, create

    owner_token = accounts.token("clinician")
    case = create(app, owner_token, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    colleague = accounts.user("clinician", email="colleague@example.org")
    with app.app_context():
        for account_id in (colleague.id, accounts.user("clinician").id):
            user = db.session.get(User, account_id)
            assert user is not None
            user.site_id = catalogue["hospital"]
        db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": "colleague@example.org", "password": PASSWORD,
                                "csrf_token": csrf_token(client, "/login")})
    assert client.get(f"/cases/{case['id']}").status_code == 404
    assert case["number"] not in client.get("/cases/").get_data(as_text=True)

    admin = app.test_client()
    accounts.login(admin, "admin")
    shared = admin.post("/admin/sites", data={
        "csrf_token": csrf_token(admin, "/admin/sites"), "site_id": catalogue["hospital"],
        "share_cases": "1"}, follow_redirects=True)
    assert "now see each other" in shared.get_data(as_text=True)
    assert client.get(f"/cases/{case['id']}").status_code == 200


@pytest.mark.parametrize(("device", "fields"), [
    ("custom", {"design_parameters:plate_thickness": "2", "material": "Ti-6Al-4V",
                "fixation": "6 screws", "justification": "no marketed plate fits",
                "exclusive_use_confirmed": "true", "contains_medicinal_substance": "false",
                "contains_human_or_animal_tissue": "false"}),
    ("adaptable", {"configuration": "size M, strap set B"}),
])
def test_other_categories_in_the_browser(app: Flask, accounts: Accounts,
                                         catalogue: dict[str, int], device: str,
                                         fields: dict[str, str]) -> None:
    client = app.test_client()
    accounts.login(client, "clinician")
    url = f"/cases/new/{catalogue[device]}"
    page = client.get(url).get_data(as_text=True)
    for name in fields:
        assert f'name="{name}"' in page, name
    form = {"csrf_token": csrf_token(client, url), "patient_code": "PAT-9",
            "institution_id": str(catalogue["hospital"]), "anatomical_site": "mandible",
            "side": "left", "intended_use": "reconstruction", "clinical_indication": "tumour",
            "needed_by": "2030-03-01", **fields}
    created = client.post(url, data=form)
    assert created.status_code == 302, created.get_data(as_text=True)[-2000:]
    case_url = created.headers["Location"]
    token = csrf_token(client, case_url)
    signed = client.post(case_url.rstrip("/") + "/transition", data={
        "csrf_token": token, "to": "submitted", "password": PASSWORD}, follow_redirects=True)
    assert "is now submitted" in signed.get_data(as_text=True)
