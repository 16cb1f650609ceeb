"""Design envelopes edited in the browser by quality (DOMAIN.md §4; FDA AM guidance §V.B;
21 CFR Part 11 §11.50, §11.200: approval is a signature with the password re-entered)."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import yaml
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.extensions import db
from pdm_records.models import AuditEvent, EnvelopeStatus, EnvelopeVersion
from tests.conftest import PASSWORD, Accounts, csrf_token

VALID_FORM = {
    "parameters.wall_thickness.unit": "mm", "parameters.wall_thickness.min": "1",
    "parameters.wall_thickness.max": "10", "parameters.wall_thickness.patient_adjustable": "1",
    "parameters.open_area.unit": "%", "parameters.open_area.max": "25",
    "max_extents.0": "180", "max_extents.1": "150", "max_extents.2": "40",
    "max_diameter": "200", "min_volume": "100", "max_volume": "250000",
    "min_wall_thickness": "1", "max_wall_thickness": "10", "thickness_statistic": "p1",
    "watertight_required": "1", "max_bodies": "1", "max_boundary_edges": "0",
    "max_non_manifold_edges": "0", "max_degenerate_faces": "5", "no_self_intersections": "1",
    "max_overhang_area": "500", "overhang_angle_deg": "45", "min_faces": "12",
    "max_faces": "2000000", "notes": "OsteoFab K133809 numbers",
}
EXPECTED = {
    "max_bodies": 1, "max_boundary_edges": 0, "max_degenerate_faces": 5, "max_diameter": 200.0,
    "max_extents": [180.0, 150.0, 40.0], "max_faces": 2000000, "max_non_manifold_edges": 0,
    "max_overhang_area": 500.0, "max_volume": 250000.0, "max_wall_thickness": 10.0,
    "min_faces": 12, "min_volume": 100.0, "min_wall_thickness": 1.0,
    "no_self_intersections": True, "overhang_angle_deg": 45.0, "thickness_statistic": "p1",
    "watertight_required": True,
    "parameters": {
        "open_area": {"unit": "%", "min": None, "max": 25.0, "patient_adjustable": False},
        "wall_thickness": {"unit": "mm", "min": 1.0, "max": 10.0, "patient_adjustable": True}},
}


SECOND_QUALITY = "quality.two@example.org"


def login_as(client: FlaskClient, accounts: Accounts, email: str) -> None:
    """Sign in through the real forms: password, then the authenticator code (quality users
    are enrolled in two-factor sign-in)."""
    account = accounts.user("quality", email=email)
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert "/tf-validate" in response.headers["Location"]
    response = client.post("/tf-validate", data={
        "code": accounts.code(account), "csrf_token": csrf_token(client, "/tf-validate")})
    assert response.status_code == 302 and "/tf-" not in response.headers["Location"]


def two_quality_users(app: Flask, accounts: Accounts) -> tuple[FlaskClient, FlaskClient]:
    """The author (quality) and a second quality user, each signed in."""
    author, other = app.test_client(), app.test_client()
    accounts.login(author, "quality")
    login_as(other, accounts, SECOND_QUALITY)
    return author, other


def second_code(accounts: Accounts) -> str:
    """The next authenticator code of the second quality user (the approver)."""
    return accounts.code(accounts.user("quality", email=SECOND_QUALITY))


def new_draft(client: FlaskClient, device_type_id: int, source: str = "empty") -> int:
    response = client.post(f"/envelopes/device-types/{device_type_id}/drafts", data={
        "csrf_token": csrf_token(client, "/envelopes/"), "source": source})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    match = re.search(r"/envelopes/versions/(\d+)/edit", response.headers["Location"])
    assert match
    return int(match.group(1))


def save(client: FlaskClient, version_id: int, form: dict[str, str]) -> Any:
    url = f"/envelopes/versions/{version_id}/edit"
    return client.post(url, data={"csrf_token": csrf_token(client, "/envelopes/"), **form})


def approve(client: FlaskClient, version_id: int, code: str | None,
            password: str = PASSWORD) -> Any:
    """Approve through the form: password and (when given) the authenticator code."""
    data = {"csrf_token": csrf_token(client, "/envelopes/"), "password": password}
    if code is not None:
        data["totp_code"] = code
    return client.post(f"/envelopes/versions/{version_id}/approve", data=data,
                       follow_redirects=True)


def definition_of(app: Flask, version_id: int) -> tuple[EnvelopeStatus, dict[str, Any]]:
    with app.app_context():
        version = db.session.get(EnvelopeVersion, version_id)
        assert version is not None
        return version.status, version.definition


def test_quality_defines_and_another_quality_user_approves_with_a_signature(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    author, other = two_quality_users(app, accounts)
    listing = author.get("/envelopes/").get_data(as_text=True)
    assert 'href="/envelopes/"' in listing  # the navigation link for quality
    assert "Patient-specific cranial/facial implant" in listing and "No envelope yet" in listing
    version_id = new_draft(author, catalogue["implant"])
    form_page = author.get(f"/envelopes/versions/{version_id}/edit").get_data(as_text=True)
    assert 'name="parameters.wall_thickness.min"' in form_page
    assert "Min volume (mm³)" in form_page and "Max overhang area (mm²)" in form_page
    saved = save(author, version_id, VALID_FORM)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    status, definition = definition_of(app, version_id)
    assert status is EnvelopeStatus.DRAFT and definition == EXPECTED
    view = author.get(f"/envelopes/versions/{version_id}").get_data(as_text=True)
    assert "Draft." in view and "Approve this envelope" not in view  # not for the author
    assert "OsteoFab K133809 numbers" in view and "<td>p1</td>" in view

    # Only the author edits the draft, through the page and through a posted form.
    assert other.get(f"/envelopes/versions/{version_id}/edit").status_code == 403
    foreign = save(other, version_id, {**VALID_FORM, "max_diameter": "999"})
    assert foreign.status_code == 403 and "Only the author" in foreign.get_data(as_text=True)
    # The author cannot approve their own envelope.
    own = approve(author, version_id, None)  # refused before any credential is checked
    assert own.status_code == 403
    assert "The author of an envelope cannot approve it" in own.get_data(as_text=True)
    wrong = approve(other, version_id, None, password="not my password")
    assert "The password is not correct; nothing was signed." in wrong.get_data(as_text=True)
    no_code = approve(other, version_id, None)
    assert "The authenticator code is not correct; nothing was signed." in no_code.get_data(
        as_text=True)
    assert definition_of(app, version_id)[0] is EnvelopeStatus.DRAFT

    page = other.get(f"/envelopes/versions/{version_id}").get_data(as_text=True)
    assert "Approve this envelope" in page and "envelope approval" in page
    assert 'name="totp_code"' in page  # the approver is enrolled: the form asks for a code
    approved = approve(other, version_id, second_code(accounts))
    assert approved.status_code == 200
    text = approved.get_data(as_text=True)
    assert "Approved and read-only." in text and 'id="read-only-notice"' in text
    assert "Test Quality (quality.two@example.org)" in text
    assert "<strong>valid</strong>" in text
    with app.app_context():
        row = db.session.get(EnvelopeVersion, version_id)
        assert row is not None and row.content_sha256
        assert f"<code>{row.content_sha256}</code>" in text
        assert row.approved_by_id != row.author_id
    assert "Edit draft" not in text and "Approve this envelope" not in text

    # Approved versions are immutable through the UI too (409), and unchanged.
    again = save(author, version_id, {**VALID_FORM, "max_diameter": "999"})
    assert again.status_code == 409 and "cannot be edited" in again.get_data(as_text=True)
    assert author.get(f"/envelopes/versions/{version_id}/edit").status_code == 409
    assert definition_of(app, version_id) == (EnvelopeStatus.APPROVED, EXPECTED)
    assert approve(other, version_id, None).status_code == 409

    # A new version copied from the approved one supersedes it once approved.
    second_id = new_draft(author, catalogue["implant"], source="approved")
    assert definition_of(app, second_id) == (EnvelopeStatus.DRAFT, EXPECTED)
    assert save(author, second_id, {**VALID_FORM, "max_diameter": "150"}).status_code == 302
    assert "Approved and read-only." in approve(other, second_id, second_code(accounts)).get_data(
        as_text=True)
    old = author.get(f"/envelopes/versions/{version_id}").get_data(as_text=True)
    assert "Superseded and read-only." in old
    assert f'href="/envelopes/versions/{second_id}">v2</a>' in old
    listing = author.get("/envelopes/").get_data(as_text=True)
    assert "badge-superseded" in listing and "badge-approved" in listing
    with app.app_context():
        actions = [e.action for e in db.session.query(AuditEvent).filter(
            AuditEvent.target_type == "envelope_version").order_by(AuditEvent.id)]
    assert actions.count("envelope.drafted") == 2 and actions.count("envelope.approved") == 2
    assert "envelope.draft_saved" in actions and "envelope.superseded" in actions


def test_validation_messages_stand_next_to_their_fields(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    author, _ = two_quality_users(app, accounts)
    version_id = new_draft(author, catalogue["implant"])
    before = definition_of(app, version_id)
    bad = {**VALID_FORM, "min_wall_thickness": "5", "max_wall_thickness": "1",
           "max_diameter": "-3", "max_bodies": "1.5", "parameters.wall_thickness.min": "abc",
           "parameters.open_area.min": "30", "max_extents.2": "", "min_faces": "9",
           "max_faces": "3", "overhang_angle_deg": "95", "parameters.open_area.unit": ""}
    refused = save(author, version_id, bad)
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)

    def error_of(field: str) -> str:
        match = re.search(rf'<small class="field-error" id="{re.escape(field)}-error">([^<]*)',
                          page)
        assert match, f"no message next to {field}"
        return match.group(1)

    assert "is greater than max_wall_thickness" in error_of("min_wall_thickness")
    assert "non-negative" in error_of("max_diameter")
    assert error_of("max_bodies") == "Enter a whole number."
    assert error_of("parameters.wall_thickness.min") == "Enter a number."
    assert "greater than max" in error_of("parameters.open_area.min")
    assert "all three extents" in error_of("max_extents")
    assert "greater than max_faces" in error_of("min_faces")
    assert "between 0 and 90" in error_of("overhang_angle_deg")
    assert "is required" in error_of("parameters.open_area.unit")
    assert 'value="abc"' in page  # what was typed is kept
    assert definition_of(app, version_id) == before  # nothing saved
    # Units are shown with the fields.
    assert "Max diameter (mm)" in page
    assert 'name="parameters.wall_thickness.unit" value="mm"' in page


def test_downloads_are_the_cli_export(app: Flask, accounts: Accounts,
                                      catalogue: dict[str, int]) -> None:
    author, other = two_quality_users(app, accounts)
    version_id = new_draft(author, catalogue["implant"])
    save(author, version_id, VALID_FORM)
    approve(other, version_id, second_code(accounts))
    engineer = app.test_client()
    accounts.login(engineer, "engineer")  # engineers read envelopes
    for fmt in ("yaml", "json"):
        response = engineer.get(f"/envelopes/versions/{version_id}/download?format={fmt}")
        assert response.status_code == 200
        assert f"envelope-{catalogue['implant']}-v1.{fmt}" in response.headers[
            "Content-Disposition"]
        cli = app.test_cli_runner().invoke(args=["pdm", "envelope", "export", str(version_id),
                                                 "--format", fmt])
        assert cli.exit_code == 0 and response.get_data(as_text=True) == cli.output
        loaded = (yaml.safe_load if fmt == "yaml" else json.loads)(response.get_data(
            as_text=True))
        assert loaded == {k: v for k, v in EXPECTED.items() if k != "parameters"} | {
            "parameters": EXPECTED["parameters"]}
    assert "# envelope version 1" in engineer.get(
        f"/envelopes/versions/{version_id}/download").get_data(as_text=True)
    assert engineer.get(f"/envelopes/versions/{version_id}/download?format=xml"
                        ).status_code == 422
    page = engineer.get("/envelopes/").get_data(as_text=True)
    assert "New empty draft" not in page and "Import YAML" not in page
    assert 'href="/envelopes/"' not in engineer.get("/").get_data(as_text=True)
    refused = engineer.post(f"/envelopes/device-types/{catalogue['implant']}/drafts", data={
        "csrf_token": csrf_token(engineer, "/envelopes/"), "source": "empty"})
    assert refused.status_code == 403


def test_import_a_file_as_a_draft(app: Flask, accounts: Accounts,
                                  catalogue: dict[str, int]) -> None:
    author, other = two_quality_users(app, accounts)
    token = csrf_token(author, "/envelopes/import")

    def upload(body: bytes, name: str, device: str = "implant") -> Any:
        return author.post("/envelopes/import", data={
            "csrf_token": token, "device_type_id": str(catalogue[device]), "notes": "from file",
            "file": (io.BytesIO(body), name)}, content_type="multipart/form-data")

    with app.app_context():
        before = db.session.query(EnvelopeVersion).count()
    broken = upload(b"max_diameter: [1, 2\n", "limits.yaml")
    assert broken.status_code == 422 and "not valid YAML" in broken.get_data(as_text=True)
    invalid = upload(json.dumps({"min_volume": 9, "max_volume": 1, "max_bodies": -1}).encode(),
                     "limits.json")
    text = invalid.get_data(as_text=True)
    assert invalid.status_code == 422
    assert "<code>definition.min_volume</code>" in text and "<code>definition.max_bodies</code>" \
        in text
    unknown = upload(b"parameters:\n  bogus: {unit: mm, min: 1, max: 2}\n", "limits.yml")
    assert unknown.status_code == 422 and "bogus" in unknown.get_data(as_text=True)
    not_text = upload(b"\xff\xfe\x00", "limits.json")
    assert not_text.status_code == 422 and "UTF-8" in not_text.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(EnvelopeVersion).count() == before  # nothing half-written
    # A round trip: an exported YAML file imports as an identical new draft.
    version_id = new_draft(author, catalogue["implant"])
    save(author, version_id, VALID_FORM)
    exported = author.get(f"/envelopes/versions/{version_id}/download?format=yaml")
    imported = upload(exported.get_data(), "v1.yaml")
    assert imported.status_code == 302
    new_id = int(imported.headers["Location"].rsplit("/", 1)[1])
    assert definition_of(app, new_id) == (EnvelopeStatus.DRAFT, EXPECTED)
    assert "Imported v1.yaml as draft version 2." in author.get(
        f"/envelopes/versions/{new_id}").get_data(as_text=True)
    # An older draft cannot be approved over a newer approved version.
    assert "Approved and read-only." in approve(other, new_id, second_code(accounts)).get_data(
        as_text=True)
    stale = approve(other, version_id, None)
    assert stale.status_code == 409 and "older content" in stale.get_data(as_text=True)


def test_the_list_is_paginated(app: Flask, accounts: Accounts,
                               catalogue: dict[str, int]) -> None:
    app.config["PDM_PAGE_SIZE"] = 2
    client = app.test_client()
    accounts.login(client, "quality")
    first = client.get("/envelopes/").get_data(as_text=True)
    assert "Page 1 of 2" in first and "Adaptable ankle orthosis" in first
    assert "Patient-specific surgical guide" not in first
    second = client.get("/envelopes/?page=2").get_data(as_text=True)
    assert "Patient-specific surgical guide" in second
