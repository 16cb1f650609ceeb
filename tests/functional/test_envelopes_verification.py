"""Envelopes as controlled documents, and verification gating the workflow (DOMAIN.md §4;
FDA AM guidance §V.B: a design that fails its envelope cannot be released)."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import User
from pdm_records.services.users import create_token
from tests.conftest import PASSWORD, Accounts
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create

# A hollow box is two edge-connected shells (outer and inner): two bodies.
HOLLOW_LIMITS = {"max_diameter": 200.0, "min_wall_thickness": 1.0, "max_wall_thickness": 50.0,
                 "watertight_required": True, "max_bodies": 2, "no_self_intersections": True,
                 "parameters": {"wall_thickness": {"unit": "mm", "min": 1.0, "max": 10.0,
                                                   "patient_adjustable": True}}}


def _second_code(accounts: Accounts) -> str:
    return accounts.code(accounts.user("quality", email="quality.two@example.org"))


def _second_quality(app: Flask, accounts: Accounts) -> str:
    account = accounts.user("quality", email="quality.two@example.org")
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None
        _, token = create_token(db.session, actor=None, user=user, name="t", expiry_days=1)
        db.session.commit()
    return token


def _envelope(app: Flask, accounts: Accounts, device_type_id: int,
              definition: dict[str, Any]) -> dict[str, Any]:
    client = app.test_client()
    author = accounts.token("quality")
    draft = client.post("/api/v1/envelopes", headers=bearer(author), json={
        "device_type_id": device_type_id, "definition": definition})
    assert draft.status_code == 201, draft.get_json()
    version = draft.get_json()
    own = client.post(f"/api/v1/envelopes/{version['id']}/approve", headers=bearer(author),
                      json={"password": PASSWORD})
    assert own.status_code == 403 and "author" in own.get_json()["message"]
    approved = client.post(f"/api/v1/envelopes/{version['id']}/approve",
                           headers=bearer(_second_quality(app, accounts)),
                           json={"password": PASSWORD, "totp_code": _second_code(accounts)})
    assert approved.status_code == 200, approved.get_json()
    return approved.get_json()


def test_an_approved_envelope_is_immutable_and_a_new_version_supersedes_it(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    first = _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    assert first["status"] == "approved" and first["content_sha256"]
    client = app.test_client()
    edit = client.patch(f"/api/v1/envelopes/{first['id']}", headers=bearer(
        accounts.token("quality")), json={"definition": {"max_diameter": 300.0}})
    assert edit.status_code == 409 and "cannot be edited" in edit.get_json()["message"]
    bad = client.post("/api/v1/envelopes", headers=bearer(accounts.token("quality")), json={
        "device_type_id": catalogue["implant"],
        "definition": {"min_wall_thickness": 5.0, "max_wall_thickness": 1.0}})
    assert bad.status_code == 422 and "min_wall_thickness" in str(bad.get_json()["field_errors"])
    second = _envelope(app, accounts, catalogue["implant"], {**HOLLOW_LIMITS,
                                                              "max_diameter": 150.0})
    assert second["version"] == 2
    listed = client.get("/api/v1/envelopes", headers=bearer(accounts.token("engineer")))
    statuses = {v["version"]: v["status"] for v in listed.get_json()["items"]
                if v["device_type_id"] == catalogue["implant"]}
    assert statuses == {1: "superseded", 2: "approved"}


def _case_in_design(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                    mesh: bytes) -> dict[str, Any]:
    clinician, engineer = accounts.token("clinician"), accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    client = app.test_client()
    attach(app, clinician, case["id"], binary_stl(), "ct-model.stl")
    assert client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                       headers=bearer(clinician)).status_code == 200
    client.post(f"/api/v1/cases/{case['id']}/transitions", json={"to": "accepted"},
                headers=bearer(engineer))
    uploaded = client.post(f"/api/v1/cases/{case['id']}/iterations", headers=bearer(engineer),
                           data={"file": (io.BytesIO(mesh), "design.stl"), "units": "mm"},
                           content_type="multipart/form-data")
    assert uploaded.status_code == 201, uploaded.get_json()
    return {"id": case["id"], "clinician": clinician, "engineer": engineer}


def verify(app: Flask, case: dict[str, Any], number: int = 1) -> dict[str, Any]:
    """Queue verification, let one worker pass run it, return the job as the API shows it."""
    client = app.test_client()
    queued = client.post(f"/api/v1/cases/{case['id']}/iterations/{number}/verify",
                         headers=bearer(case["engineer"]))
    assert queued.status_code == 202, queued.get_json()
    job = queued.get_json()
    assert job["status"] == "queued"
    ran = app.test_cli_runner().invoke(args=["pdm", "worker", "--once"])
    assert ran.exit_code == 0, ran.output
    assert f"job {job['id']} succeeded" in ran.output, ran.output
    done = client.get(f"/api/v1/cases/{case['id']}/jobs/{job['id']}",
                      headers=bearer(case["engineer"])).get_json()
    assert done["status"] == "succeeded"
    detail = client.get(f"/api/v1/cases/{case['id']}", headers=bearer(case["engineer"]))
    report = detail.get_json()["design_iterations"][number - 1]["verification"]
    assert report is not None and report["id"] == done["result"]["report_id"]
    return report  # type: ignore[no-any-return]


def _hollow_box(outer: float = 40.0, wall: float = 2.0) -> bytes:
    import numpy as np

    from tests.meshes import CUBE_FACES, CUBE_VERTICES

    inner = CUBE_VERTICES * (outer - 2 * wall) + wall
    vertices = np.vstack([CUBE_VERTICES * outer, inner])
    faces = np.vstack([CUBE_FACES, CUBE_FACES[:, ::-1] + 8])
    return binary_stl(vertices, faces, scale=1.0)


def test_a_passing_design_goes_all_the_way_to_delivery(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    client = app.test_client()
    early = client.post(f"/api/v1/cases/{case['id']}/transitions", headers=bearer(
        case["engineer"]), json={"to": "verified", "password": PASSWORD})
    assert early.status_code == 409  # not verified yet
    body = verify(app, case)
    assert body["passed"] is True
    names = [c["name"] for c in body["checks"]]
    assert "min_wall_thickness" in names and "max_diameter" in names
    thickness = next(c for c in body["checks"] if c["name"] == "min_wall_thickness")
    assert abs(thickness["measured"] - 2.0) < 0.05 and thickness["margin"] > 0
    margins = [c["margin_pct"] for c in body["checks"] if c["margin_pct"] is not None]
    assert margins == sorted(margins)  # closest to their limits first
    browser = app.test_client()
    accounts.login(browser, "engineer")
    page = browser.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "Verification of iteration #1: passed" in page
    assert "<td>min wall thickness</td><td>2</td><td>1</td><td>1</td>" in page  # rounded
    steps = [("verified", "engineer"), ("awaiting_approval", "engineer"),
             ("approved", "clinician")]
    for target, who in steps:
        response = client.post(f"/api/v1/cases/{case['id']}/transitions",
                               headers=bearer(case[who]),
                               json={"to": target, "password": PASSWORD})
        assert response.status_code == 200, (target, response.get_json())
    released = client.post(f"/api/v1/cases/{case['id']}/transitions",
                           headers=bearer(accounts.token("quality")),
                           json={"to": "released", "password": PASSWORD,
                                 "totp_code": accounts.totp("quality")})
    assert released.status_code == 200, released.get_json()
    delivered = client.post(f"/api/v1/cases/{case['id']}/transitions",
                            headers=bearer(case["engineer"]),
                            json={"to": "delivered", "delivered_on": date.today().isoformat()})
    detail = delivered.get_json()
    assert detail["status"] == "delivered"
    assert [s["meaning"] for s in detail["signatures"]] == [
        "authored", "verified", "approved", "released"]
    assert all(s["status"] == "valid" for s in detail["signatures"])
    from pdm_records.models import Signature, VerificationReport

    with app.app_context():
        verified = db.session.query(Signature).filter_by(case_id=case["id"],
                                                         meaning="verified").one()
        bound = verified.signed_record["verification_report"]
        assert bound["passed"] is True and bound["report_sha256"] == body["report_sha256"]
        # Altering the report the verified signature relies on breaks the signature.
        from pdm_records.models import Case
        from pdm_records.services.case_views import signature_status

        row = db.session.get(VerificationReport, bound["id"])
        assert row is not None
        row.report = {**row.report, "measurements": {}}  # the report's content is altered
        db.session.flush()
        case_row = db.session.get(Case, case["id"])
        assert case_row is not None
        assert signature_status(case_row, verified, db.session).startswith("broken")
        db.session.rollback()


def test_a_failing_design_cannot_be_verified_or_released(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    _envelope(app, accounts, catalogue["implant"], {**HOLLOW_LIMITS, "min_wall_thickness": 3.0})
    case = _case_in_design(app, accounts, catalogue, _hollow_box(wall=2.0))
    client = app.test_client()
    report = verify(app, case)
    assert report["passed"] is False
    failing = next(c for c in report["checks"] if c["name"] == "min_wall_thickness")
    assert failing["passed"] is False and failing["margin"] < 0
    assert report["checks"][0]["name"] == "min_wall_thickness"  # the limiting check first
    refused = client.post(f"/api/v1/cases/{case['id']}/transitions",
                          headers=bearer(case["engineer"]),
                          json={"to": "verified", "password": PASSWORD})
    assert refused.status_code == 409
    assert "has not passed verification" in refused.get_json()["message"]


def test_verification_needs_an_approved_envelope(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/iterations/1/verify",
                                      headers=bearer(case["engineer"]))
    assert response.status_code == 409
    assert "no approved design envelope" in response.get_json()["message"]


def test_requested_values_outside_the_envelope_are_refused_at_submission(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)  # wall_thickness 1–10 mm
    clinician = accounts.token("clinician")
    payload = {**common(catalogue, "implant"), **PATIENT_MATCHED,
               "requested_parameters": {"wall_thickness": 12.0}}
    case = create(app, clinician, payload)
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(clinician))
    assert response.status_code == 422
    message = response.get_json()["field_errors"]["requested_parameters.wall_thickness"][0]
    assert "outside the approved envelope" in message and "1.0–10.0 mm" in message



def test_envelope_control(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    """Only the author edits a draft; the approver wrote none of it; a wrong password signs
    nothing; approved versions cannot be approved again; unknown parameters are refused."""
    from pdm_records.models import Signature

    client = app.test_client()
    author, other = accounts.token("quality"), _second_quality(app, accounts)
    draft = client.post("/api/v1/envelopes", headers=bearer(author), json={
        "device_type_id": catalogue["implant"], "definition": HOLLOW_LIMITS}).get_json()
    edited = client.patch(f"/api/v1/envelopes/{draft['id']}", headers=bearer(other),
                          json={"definition": {"max_diameter": 999.0}})
    assert edited.status_code == 403 and "Only the author" in edited.get_json()["message"]
    unknown = client.patch(f"/api/v1/envelopes/{draft['id']}", headers=bearer(author), json={
        "definition": {"parameters": {"bogus": {"unit": "mm", "min": 1, "max": 2}}}})
    assert unknown.status_code == 422
    with app.app_context():
        signatures_before = db.session.query(Signature).count()
    wrong = client.post(f"/api/v1/envelopes/{draft['id']}/approve", headers=bearer(other),
                        json={"password": "not the password"})
    assert wrong.status_code == 422
    with app.app_context():
        assert db.session.query(Signature).count() == signatures_before
    assert client.post(f"/api/v1/envelopes/{draft['id']}/approve", headers=bearer(other),
                       json={"password": PASSWORD,
                             "totp_code": _second_code(accounts)}).status_code == 200
    again = client.post(f"/api/v1/envelopes/{draft['id']}/approve", headers=bearer(other),
                        json={"password": PASSWORD})
    assert again.status_code == 409
    engineer = client.post("/api/v1/envelopes", headers=bearer(accounts.token("engineer")),
                           json={"device_type_id": catalogue["implant"], "definition": {}})
    assert engineer.status_code == 403


def test_a_tampered_envelope_or_report_is_not_trusted(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    from pdm_records.models import EnvelopeVersion, VerificationReport

    approved = _envelope(app, accounts, catalogue["implant"],
                         {**HOLLOW_LIMITS, "min_wall_thickness": 3.0})
    case = _case_in_design(app, accounts, catalogue, _hollow_box(wall=2.0))
    failing = verify(app, case)  # 2 mm wall against a 3 mm minimum
    assert failing["passed"] is False
    with app.app_context():
        report = db.session.get(VerificationReport, failing["id"])
        assert report is not None
        report.passed = True  # flip the flag without the content
        db.session.commit()
    client = app.test_client()
    refused = client.post(f"/api/v1/cases/{case['id']}/transitions",
                          headers=bearer(case["engineer"]),
                          json={"to": "verified", "password": PASSWORD})
    assert refused.status_code == 409
    with app.app_context():
        version = db.session.get(EnvelopeVersion, approved["id"])
        assert version is not None
        version.definition = {**version.definition, "min_wall_thickness": 0.5}
        db.session.commit()
    queued = client.post(f"/api/v1/cases/{case['id']}/iterations/1/verify",
                         headers=bearer(case["engineer"])).get_json()
    ran = app.test_cli_runner().invoke(args=["pdm", "worker", "--once"])
    assert f"job {queued['id']} failed" in ran.output
    assert "does not match what was approved" in ran.output


def test_the_same_iteration_can_be_verified_again(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    first, second = verify(app, case), verify(app, case)
    assert first["id"] != second["id"] and first["report_sha256"] == second["report_sha256"]
