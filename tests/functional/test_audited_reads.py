"""Reads are audited (issue 6 §3; 21 CFR Part 11 §11.10(e)): a file download writes
``file.downloaded`` before any byte is sent, and when that event cannot be written the download
is refused with 503 (no unaudited access)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.extensions import db
from pdm_records.models import AuditEvent
from tests.conftest import ON_POSTGRES, Accounts
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create


def _case_with_file(app: Flask, accounts: Accounts, catalogue: dict[str, int]
                    ) -> tuple[str, int, int]:
    token = accounts.token("clinician")
    case = create(app, token, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    response = attach(app, token, case["id"], binary_stl(), "plan.stl")
    assert response.status_code == 201, response.get_json()
    detail = app.test_client().get(f"/api/v1/cases/{case['id']}", headers=bearer(token))
    [attachment] = detail.get_json()["revisions"][0]["attachments"]
    return token, case["id"], attachment["id"]


def _downloads(app: Flask) -> list[AuditEvent]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "file.downloaded").order_by(AuditEvent.seq)))
        db.session.expunge_all()
        return rows


@pytest.fixture
def prepared(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> tuple[str, int, int]:
    """A clinician's token, a case and the id of its attachment."""
    return _case_with_file(app, accounts, catalogue)


@contextmanager
def refusing_audit_writes(app: Flask) -> Iterator[None]:
    """The database refuses new audit events (as a full disk or a revoked grant would)."""
    if ON_POSTGRES:
        create = ["CREATE OR REPLACE FUNCTION pdm_test_refuse() RETURNS trigger LANGUAGE plpgsql "
                  "AS $$ BEGIN RAISE EXCEPTION 'audit writes refused'; END $$",
                  "CREATE TRIGGER pdm_test_refuse BEFORE INSERT ON audit_event "
                  "FOR EACH ROW EXECUTE FUNCTION pdm_test_refuse()"]
        drop = ["DROP TRIGGER IF EXISTS pdm_test_refuse ON audit_event",
                "DROP FUNCTION IF EXISTS pdm_test_refuse()"]
    else:
        create = ["CREATE TRIGGER pdm_test_refuse BEFORE INSERT ON audit_event "
                  "BEGIN SELECT RAISE(ABORT, 'audit writes refused'); END"]
        drop = ["DROP TRIGGER IF EXISTS pdm_test_refuse"]
    with app.app_context(), db.engine.begin() as conn:
        for statement in create:
            conn.execute(sa.text(statement))
    try:
        yield
    finally:
        with app.app_context(), db.engine.begin() as conn:
            for statement in drop:
                conn.execute(sa.text(statement))


def test_an_api_download_is_audited(app: Flask, accounts: Accounts,
                                    catalogue: dict[str, int]) -> None:
    token, case_id, attachment_id = _case_with_file(app, accounts, catalogue)
    response = app.test_client().get(
        f"/api/v1/cases/{case_id}/attachments/{attachment_id}/content", headers=bearer(token),
        environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert response.status_code == 200 and response.data == binary_stl()
    [event] = _downloads(app)
    assert event.case_id == case_id and event.actor_label.startswith("Test Clinician")
    assert event.target_type == "stored_file" and event.remote_addr == "192.0.2.7"
    assert event.after is not None and event.after["attachment_id"] == attachment_id
    assert event.after["original_name"] == "plan.stl" and len(event.after["sha256"]) == 64
    assert app.test_cli_runner().invoke(args=["pdm", "verify-audit"]).exit_code == 0


def test_a_web_download_is_audited(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                                   client: FlaskClient) -> None:
    _, case_id, attachment_id = _case_with_file(app, accounts, catalogue)
    engineer = accounts.login(client, "clinician")
    response = client.get(f"/cases/{case_id}/attachments/{attachment_id}")
    assert response.status_code == 200 and response.data == binary_stl()
    [event] = _downloads(app)
    assert event.actor_id == engineer.id and event.case_id == case_id


def test_a_refused_download_is_not_audited(app: Flask, accounts: Accounts,
                                           catalogue: dict[str, int]) -> None:
    token, case_id, _ = _case_with_file(app, accounts, catalogue)
    response = app.test_client().get(
        f"/api/v1/cases/{case_id}/attachments/999999/content", headers=bearer(token))
    assert response.status_code == 404
    assert _downloads(app) == []


def test_no_api_download_without_its_audit_event(
        app: Flask, prepared: tuple[str, int, int]) -> None:
    token, case_id, attachment_id = prepared
    with refusing_audit_writes(app):
        response = app.test_client().get(
            f"/api/v1/cases/{case_id}/attachments/{attachment_id}/content",
            headers=bearer(token))
    assert response.status_code == 503
    body = response.get_json()
    assert body["error"] == "service_unavailable"
    assert "audit trail" in body["message"] and "nothing was sent" in body["message"]
    assert response.headers["Retry-After"]
    assert binary_stl()[84:200] not in response.data
    assert _downloads(app) == []


def test_no_web_download_without_its_audit_event(
        app: Flask, accounts: Accounts, client: FlaskClient,
        prepared: tuple[str, int, int]) -> None:
    _, case_id, attachment_id = prepared
    accounts.login(client, "clinician")  # signing in may write events: before the refusal
    with refusing_audit_writes(app):
        response = client.get(f"/cases/{case_id}/attachments/{attachment_id}")
    assert response.status_code == 503
    assert "audit trail" in response.get_data(as_text=True)
    assert binary_stl()[84:200] not in response.data
    assert _downloads(app) == []
