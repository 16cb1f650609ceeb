"""The case dossier and ``pdm verify-case`` (issue #6 §4, §6; 21 CFR Part 11 §11.10(a) altered
records are discernible, §11.10(b) human-readable copies, §11.10(e) audit trail with before/after
values, §11.50 manifestation, §11.70 signature/record linking)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import (
    AuditEvent,
    Case,
    DesignIteration,
    RequestRevision,
    Signature,
    SignatureMeaning,
    StoredFile,
    VerificationReport,
)
from pdm_records.services.dossier import audit_history
from tests.conftest import PASSWORD, Accounts
from tests.functional.test_envelopes_verification import (
    HOLLOW_LIMITS,
    _case_in_design,
    _envelope,
    _hollow_box,
    verify,
)
from tests.requests_support import bearer


@pytest.fixture
def designed(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    """A case with a signed request (one attachment), a design iteration that passed its
    envelope, and the engineer's *verified* signature."""
    envelope = _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    report = verify(app, case)
    assert report["passed"] is True
    signed = app.test_client().post(f"/api/v1/cases/{case['id']}/transitions",
                                    headers=bearer(case["engineer"]),
                                    json={"to": "verified", "password": PASSWORD})
    assert signed.status_code == 200, signed.get_json()
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None
        case["number"] = row.number
    case["envelope"] = envelope
    case["report"] = report
    return case


def dossier(app: Flask, accounts: Accounts, number: str, **query: Any) -> Any:
    browser = app.test_client()
    accounts.login(browser, "quality")
    return browser.get(f"/cases/{number}/dossier", query_string=query)


def views(app: Flask, case_id: int) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.case_id == case_id, AuditEvent.action == "case.dossier_viewed")))


def test_the_dossier_shows_the_whole_case_and_its_opening_is_audited(
        app: Flask, accounts: Accounts, designed: dict[str, Any]) -> None:
    case_id, number = designed["id"], designed["number"]
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert case is not None
        attachment = case.revisions[0].attachments[0].file
        iteration = case.iterations[0].file
        iteration.legal_hold = True  # what the retention engine sets for a legal hold
        files = {"attachment": (attachment.sha256, attachment.version_id),
                 "iteration": (iteration.sha256, iteration.version_id)}
        db.session.commit()
    assert views(app, case_id) == []
    response = dossier(app, accounts, number)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    # Request revision with its signature (§11.50: printed name, time, meaning), files with
    # SHA-256 and storage version, the report with its envelope version and hash.
    assert "Revision 1" in html and "Test Clinician" in html and "authored" in html
    for sha256, version_id in files.values():
        assert sha256 in html and f"version {version_id}" in html
    assert "ct-model.stl" in html and "design.stl" in html
    assert designed["report"]["report_sha256"] in html
    assert f"version {designed['envelope']['version']} (approved)" in html
    assert designed["envelope"]["content_sha256"] in html
    assert html.count('badge-valid">valid</span>') == 2  # authored and verified
    assert "badge-broken" not in html
    assert 'id="integrity-verdict"><span class="badge badge-valid">intact' in html
    # Workflow history and retention / hold state as the columns say.
    assert "submitted → accepted" in html and "in design → verified" in html
    assert "on hold (1 of 2 objects)" in html
    # The audit history, oldest first, with before/after values.
    created = html.index("<td>case.created</td>")
    signed = html.index("<td>signature.created</td>")
    verified = html.index("<td>design_iteration.verified</td>")
    assert created < signed < verified
    assert '"status": "in_design"' in html and '"status": "verified"' in html
    events = views(app, case_id)
    assert len(events) == 1
    assert events[0].actor_label.startswith("Test Quality") and events[0].after == {
        "number": number, "audit_page": 1}
    assert "<td>case.dossier_viewed</td>" in html  # the read itself is on record
    # quality exports the audit package from here (docs/audit-package.md)
    assert f'action="/cases/{designed["id"]}/package"' in html
    dossier(app, accounts, number.lower())
    assert len(views(app, case_id)) == 2
    # The verification result feeds the search.
    found = app.test_client().get("/api/v1/cases/search", query_string={
        "verification": "passed", "on_hold": "true"}, headers=bearer(accounts.token("quality")))
    assert [i["number"] for i in found.get_json()["items"]] == [number]


def test_only_quality_opens_a_dossier_and_unknown_cases_are_404(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    assert dossier(app, accounts, "PDM-2026-999999").status_code == 404
    for role in ("clinician", "engineer", "admin"):
        browser = app.test_client()
        accounts.login(browser, role)
        assert browser.get("/cases/PDM-2026-999999/dossier").status_code == 403, role
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "case.dossier_viewed")) == 0


def test_the_audit_history_comes_in_time_order_and_in_pages(
        app: Flask, accounts: Accounts, designed: dict[str, Any]) -> None:
    with app.app_context():
        case = db.session.get(Case, designed["id"])
        assert case is not None
        everything = list(db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.case_id == case.id).order_by(AuditEvent.occurred_at, AuditEvent.id)))
        assert len(everything) > 6
        seen = []
        first = audit_history(db.session, case, page=1, per_page=4)
        assert first["total"] == len(everything) and first["pages"] == -(-len(everything) // 4)
        for page in range(1, first["pages"] + 1):
            items = audit_history(db.session, case, page=page, per_page=4)["items"]
            assert len(items) <= 4
            seen.extend(item["id"] for item in items)
        assert seen == [e.id for e in everything]
        times = [item["occurred_at"] for item in first["items"]]
        assert times == sorted(times)
        # The chain hash shown is the stored one (21 CFR Part 11 §11.10(e)), never recomputed.
        assert first["items"][0]["hash"] == everything[0].hash
        assert first["items"][0]["seq"] == everything[0].seq
    response = dossier(app, accounts, designed["number"], page=2)
    assert response.status_code == 200  # one page holds 100 events: page 2 is clamped to 1
    assert "page 1 of 1" in response.get_data(as_text=True)


def _run(app: Flask, number: str, *extra: str) -> Any:
    return app.test_cli_runner().invoke(args=["pdm", "verify-case", number, *extra])


def _json(app: Flask, number: str) -> dict[str, Any]:
    result = _run(app, number, "--json")
    body: dict[str, Any] = json.loads(result.stdout)
    body["exit_code"] = result.exit_code
    return body


def test_verify_case_reports_each_kind_of_tampering(
        app: Flask, accounts: Accounts, designed: dict[str, Any]) -> None:
    number = designed["number"]
    result = _run(app, number)
    assert result.exit_code == 0, result.output
    assert "verdict: intact" in result.stdout
    assert result.stdout.count("[valid ] signature") == 2
    body = _json(app, number)
    assert body["ok"] is True and body["exit_code"] == 0
    assert {o["kind"] for o in body["objects"]} == {
        "attachment", "design_iteration", "verification_report", "signed_record"}
    assert [s["meaning"] for s in body["signatures"]] == ["authored", "verified"]

    # 1. The kept copy of the signed content (the signature row) is edited.
    with app.app_context():
        authored = db.session.scalars(sa.select(Signature).where(
            Signature.case_id == designed["id"],
            Signature.meaning == SignatureMeaning.AUTHORED)).one()
        original = authored.signed_record
        authored.signed_record = {**original, "patient_code": "PAT-9999"}
        db.session.commit()
        authored_id = authored.id
    body = _json(app, number)
    assert body["exit_code"] == 1 and body["ok"] is False
    broken = {s["signature_id"]: s for s in body["signatures"] if not s["valid"]}
    assert list(broken) == [authored_id]
    assert "the kept copy of the signed content was altered" in broken[authored_id]["reasons"]
    page = dossier(app, accounts, number).get_data(as_text=True)
    assert "the kept copy of the signed content was altered" in page
    assert 'id="integrity-verdict" role="alert"' in page
    with app.app_context():
        row = db.session.get(Signature, authored_id)
        assert row is not None
        row.signed_record = original
        db.session.commit()
    assert _json(app, number)["ok"] is True

    # 2. The signed request's content is edited in the database.
    with app.app_context():
        revision = db.session.scalars(sa.select(RequestRevision).where(
            RequestRevision.case_id == designed["id"])).one()
        content = revision.content
        revision.content = {**content, "side": "right"}
        db.session.commit()
        revision_id = revision.id
    body = _json(app, number)
    assert body["exit_code"] == 1
    reasons = [r for s in body["signatures"] for r in s["reasons"]]
    assert "the record's content changed after signing" in reasons
    with app.app_context():
        revision = db.session.get(RequestRevision, revision_id)
        assert revision is not None
        revision.content = content
        db.session.commit()
    assert _json(app, number)["ok"] is True

    # 3. The verification report row is edited: the report and the verified signature break.
    with app.app_context():
        report = db.session.scalars(sa.select(VerificationReport).where(
            VerificationReport.case_id == designed["id"])).one()
        kept = report.report
        report.report = {**kept, "warnings": ["edited afterwards"]}
        db.session.commit()
        report_id = report.id
    body = _json(app, number)
    assert body["exit_code"] == 1
    report_check = next(o for o in body["objects"] if o["kind"] == "verification_report")
    assert report_check["ok"] is False and "no longer hashes" in report_check["reason"]
    assert [s["meaning"] for s in body["signatures"] if not s["valid"]] == ["verified"]
    with app.app_context():
        report = db.session.get(VerificationReport, report_id)
        assert report is not None
        report.report = kept
        db.session.commit()
    assert _json(app, number)["ok"] is True

    # 4. A stored object is overwritten behind the store's back (local write-once folder).
    with app.app_context():
        case = db.session.get(Case, designed["id"])
        assert case is not None
        stored: StoredFile = case.revisions[0].attachments[0].file
        path = Path(app.config["PDM_STORAGE_PATH"]) / "data" / stored.key
    os.chmod(path, 0o644)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    result = _run(app, number)
    assert result.exit_code == 1
    assert "verdict: BROKEN" in result.stdout
    assert "the stored content does not match its SHA-256" in result.stdout
    body = _json(app, number)
    attachment_check = next(o for o in body["objects"] if o["kind"] == "attachment")
    assert attachment_check["ok"] is False
    authored_verdict = next(s for s in body["signatures"] if s["meaning"] == "authored")
    assert authored_verdict["valid"] is False
    assert any("ct-model.stl" in r and "SHA-256" in r for r in authored_verdict["reasons"])
    html = dossier(app, accounts, number).get_data(as_text=True)
    assert html.count('badge-broken">broken</span>') >= 2  # the file and its signature


def test_verify_case_of_an_unknown_case_exits_2(app: Flask) -> None:
    result = _run(app, "PDM-2026-424242")
    assert result.exit_code == 2
    assert "no case PDM-2026-424242" in result.output


def test_a_new_design_iteration_resets_the_verification_result(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    _envelope(app, accounts, catalogue["implant"], {**HOLLOW_LIMITS, "min_wall_thickness": 3.0})
    case = _case_in_design(app, accounts, catalogue, _hollow_box(wall=2.0))
    assert verify(app, case)["passed"] is False
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None and row.verification_result.value == "failed"
    import io

    uploaded = app.test_client().post(
        f"/api/v1/cases/{case['id']}/iterations", headers=bearer(case["engineer"]),
        data={"file": (io.BytesIO(_hollow_box(wall=4.0)), "design-2.stl"), "units": "mm"},
        content_type="multipart/form-data")
    assert uploaded.status_code == 201
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None and row.verification_result.value == "none"
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DesignIteration).where(
            DesignIteration.case_id == case["id"])) == 2
    assert verify(app, case, number=2)["passed"] is True
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None and row.verification_result.value == "passed"
