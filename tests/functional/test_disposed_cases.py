"""A disposed case takes no further changes (DOMAIN.md §5, §6: at the end of its retention
period a record is destroyed and only the signed tombstone remains; anything added afterwards
would be a record nobody keeps and an orphan of the disposal).

Every change locks the case (``services.requests.get_case(lock=True)``), and that refuses a
case whose disposal is complete or signed and under way with a 409 that says so, before
anything is written. Only the disposal route may lock it, to complete an interrupted run.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.context import get_store
from pdm_records.extensions import db
from pdm_records.models import (
    AuditEvent,
    Case,
    DesignIteration,
    DesignPreview,
    TombstoneState,
    User,
)
from pdm_records.services import retention as svc
from tests.conftest import PASSWORD, Accounts, csrf_token, object_count, table_counts
from tests.requests_support import bearer
from tests.retention_support import seconds_policy, signed_case, wait_until_disposable
from tests.viewer_support import case_with_iteration, graded_plate, stl


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"PDM_RETENTION_POLICY": seconds_policy(tmp_path, 1)}


def _dispose(app: Flask, accounts: Accounts, case_id: int) -> FlaskClient:
    """Dispose of the case through the form, as quality; the signed-in browser."""
    quality = app.test_client()
    accounts.login(quality, "quality")
    done = quality.post(f"/retention/cases/{case_id}/dispose", data={
        "reason": "retention ended, reviewed", "password": PASSWORD,
        "totp_code": accounts.totp("quality"), "csrf_token": csrf_token(quality, "/retention/")})
    assert done.status_code == 302
    return quality


def _counts(app: Flask) -> tuple[dict[str, int], int]:
    return table_counts(app), object_count(app)


def _writes(app: Flask, accounts: Accounts, case: dict[str, Any],
            quality: FlaskClient) -> dict[str, Any]:
    """Each change someone could try on the case: name → response."""
    case_id = case["id"]
    api = app.test_client()
    clinician, engineer = bearer(case["clinician"]), bearer(case["engineer"])
    browser = app.test_client()
    accounts.login(browser, "clinician")
    token = csrf_token(browser, "/account/tokens")
    return {
        "api comment": api.post(f"/api/v1/cases/{case_id}/comments", headers=clinician,
                                json={"body": "one more thing"}),
        "api accept": api.post(f"/api/v1/cases/{case_id}/transitions", headers=engineer,
                               json={"to": "accepted"}),
        "api cancel": api.post(f"/api/v1/cases/{case_id}/transitions", headers=clinician,
                               json={"to": "cancelled", "reason": "not needed"}),
        "web comment": browser.post(f"/cases/{case_id}/comments",
                                    data={"body": "one more thing", "csrf_token": token}),
        "web hold": quality.post(f"/retention/cases/{case_id}/holds", data={
            "reason": "late claim", "password": PASSWORD, "totp_code": accounts.totp("quality"),
            "csrf_token": csrf_token(quality, "/account/tokens")}),
    }


def test_a_disposed_case_refuses_every_change(app: Flask, accounts: Accounts,
                                              catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    wait_until_disposable(app, case["id"])
    quality = _dispose(app, accounts, case["id"])
    before = _counts(app)
    for name, response in _writes(app, accounts, case, quality).items():
        text = response.get_data(as_text=True)
        assert response.status_code == 409, (name, response.status_code, text[:300])
        assert "was disposed of on" in text and "takes no further changes" in text, name
    assert _counts(app) == before, "a change to a disposed case wrote something"
    # Reading stays possible: the case page shows the disposal and its tombstone, and offers
    # no action that would be refused (no comment form, no workflow step, no hold).
    page = quality.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "retention ended, reviewed" in page and 'id="no-changes"' in page
    for action in ("/comments", "/transition", "/holds", "/assign"):
        assert f'action="/cases/{case["id"]}{action}"' not in page, action
        assert f'action="/retention/cases/{case["id"]}{action}"' not in page, action
    view = app.test_client().get(f"/api/v1/cases/{case['id']}",
                                 headers=bearer(case["clinician"])).get_json()
    assert view["takes_changes"] is False and view["allowed_actions"] == []


def test_a_disposal_under_way_refuses_changes_and_can_still_be_completed(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    wait_until_disposable(app, case["id"])
    quality = app.test_client()
    accounts.login(quality, "quality")
    with app.test_request_context():  # signed, tombstone written, nothing deleted yet
        row = db.session.get(Case, case["id"])
        signer = db.session.get(User, accounts.user("quality").id)
        assert row is not None and signer is not None
        svc.start_disposal(db.session, get_store(), actor=signer, case=row,
                           reason="retention ended", password=PASSWORD,
                           totp_code=accounts.totp("quality"))
        db.session.commit()
    before = _counts(app)
    for name, response in _writes(app, accounts, case, quality).items():
        text = response.get_data(as_text=True)
        assert response.status_code == 409, (name, response.status_code, text[:300])
        assert "is under way" in text, name
    assert _counts(app) == before
    resumed = quality.post(f"/retention/cases/{case['id']}/dispose", data={
        "reason": "retention ended", "password": PASSWORD,
        "totp_code": accounts.totp("quality"), "csrf_token": csrf_token(quality, "/retention/")})
    assert resumed.status_code == 302
    with app.app_context():
        tomb = svc.tombstone_of(db.session, db.session.get(Case, case["id"]))  # type: ignore[arg-type]
        assert tomb is not None and tomb.state is TombstoneState.COMPLETE


def test_disposal_removes_the_cached_3d_previews(app: Flask, accounts: Accounts,
                                                 catalogue: dict[str, int],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview GLB is a derived copy of the patient's geometry: it goes with the records."""
    # The draft attachment's provisional lock (30 days) would outlast the one-second policy.
    monkeypatch.setattr("pdm_records.services.files.DRAFT_RETENTION", timedelta(seconds=1))
    case = case_with_iteration(app, accounts, catalogue, stl(*graded_plate(rings=6, sectors=24)))

    def previews() -> int:
        with app.app_context():
            return int(db.session.scalar(
                sa.select(sa.func.count()).select_from(DesignPreview).join(
                    DesignIteration, DesignIteration.id == DesignPreview.iteration_id).where(
                    DesignIteration.case_id == case["id"])) or 0)

    assert previews() == 1
    wait_until_disposable(app, case["id"])
    quality = _dispose(app, accounts, case["id"])
    assert previews() == 0
    with app.app_context():
        event = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "case.disposed")).one()
        assert event.after["previews_removed"] == 1
    gone = quality.get(f"/cases/{case['id']}/iterations/1/preview.glb")
    assert gone.status_code == 404 and "was disposed of" in gone.get_data(as_text=True)
