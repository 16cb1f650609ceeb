"""Retention in the web UI and on the command line: the case panel, holds placed and released
through the forms, the retention and disposal pages, ``pdm dispose``, ``pdm retention-report``,
and a broken policy refused by serving and by ``pdm doctor``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records import create_app
from pdm_records.config import ConfigurationError, load_settings
from pdm_records.extensions import db
from pdm_records.models import Case, FileState, LegalHold, StoredFile, Tombstone, TombstoneState
from pdm_records.services.doctor import _retention_check
from tests.conftest import PASSWORD, Accounts, csrf_token
from tests.retention_support import (
    seconds_policy,
    signed_case,
    wait_until_disposable,
    write_policy,
)


@pytest.fixture
def retention_seconds() -> int | None:
    return None  # the built-in IMDRF policy


@pytest.fixture
def config_overrides(tmp_path: Path, retention_seconds: int | None) -> dict[str, Any]:
    if retention_seconds is None:
        return {}
    return {"PDM_RETENTION_POLICY": seconds_policy(tmp_path, retention_seconds)}


def test_case_page_shows_retention_and_quality_places_and_releases_a_hold(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=1)
    quality = app.test_client()
    accounts.login(quality, "quality")
    page = quality.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "Retention class" in page and "implantable" in page
    assert "IMDRF N58: 15 years after signed" in page and "(sets the deadline)" in page
    assert "local: 2 of 2 objects checked" in page and "Place a legal hold" in page
    assert 'name="totp_code"' in page  # the quality user is enrolled: signing asks for a code
    url = f"/retention/cases/{case['id']}/holds"
    token = csrf_token(quality, f"/cases/{case['id']}")
    wrong = quality.post(url, data={"reason": "litigation", "password": "nope",
                                    "csrf_token": token})
    assert wrong.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LegalHold)) == 0
    placed = quality.post(url, data={"reason": "litigation 17", "password": PASSWORD,
                                     "totp_code": accounts.totp("quality"),
                                     "csrf_token": token}, follow_redirects=True)
    assert placed.status_code == 200
    text = placed.get_data(as_text=True)
    assert "Legal hold placed" in text and "litigation 17" in text
    with app.app_context():
        hold = db.session.scalar(sa.select(LegalHold))
        assert hold is not None and hold.active
        rows = db.session.scalars(sa.select(StoredFile).where(
            StoredFile.case_id == case["id"])).all()
        assert rows and all(r.legal_hold for r in rows)
    overview = quality.get("/retention/").get_data(as_text=True)
    assert "litigation 17" in overview and "Active legal holds" in overview
    # A clinician sees the panel but cannot act on holds.
    clinician = app.test_client()
    accounts.login(clinician, "clinician")
    clinician_page = clinician.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "Retention class" in clinician_page and "Place a legal hold" not in clinician_page
    assert 'name="totp_code"' not in clinician_page  # not enrolled, and no signing form here
    assert clinician.post(url, data={"reason": "x", "password": PASSWORD,
                                     "csrf_token": csrf_token(clinician, "/cases/")}
                          ).status_code == 403
    released = quality.post(f"/retention/cases/{case['id']}/holds/{hold.id}/release",
                            data={"reason": "settled", "password": PASSWORD,
                                  "totp_code": accounts.totp("quality"),
                                  "csrf_token": token}, follow_redirects=True)
    assert released.status_code == 200 and "released" in released.get_data(as_text=True)
    with app.app_context():
        rows = db.session.scalars(sa.select(StoredFile).where(
            StoredFile.case_id == case["id"])).all()
        assert not any(r.legal_hold for r in rows)
    again = quality.post(f"/retention/cases/{case['id']}/holds/{hold.id}/release",
                         data={"reason": "twice", "password": PASSWORD, "csrf_token": token})
    assert again.status_code == 409


def test_retention_page_lists_upcoming_expiries(app: Flask, accounts: Accounts,
                                                catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    quality = app.test_client()
    accounts.login(quality, "quality")
    with app.app_context():
        number = db.session.get(Case, case["id"]).number  # type: ignore[union-attr]
    assert number not in quality.get("/retention/?within_days=30").get_data(as_text=True)
    wide = quality.get("/retention/?within_days=36500").get_data(as_text=True)
    assert number in wide and "Retention ending within 36500 days" in wide


@pytest.mark.parametrize("retention_seconds", [2])
def test_disposal_through_the_web_only_after_expiry(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    quality = app.test_client()
    accounts.login(quality, "quality")
    token = csrf_token(quality, f"/cases/{case['id']}")
    wait_until_disposable(app, case["id"])
    with app.app_context():
        number = db.session.get(Case, case["id"]).number  # type: ignore[union-attr]
    listing = quality.get("/retention/disposal").get_data(as_text=True)
    assert number in listing and "Dispose of " + number in listing
    no_reason = quality.post(f"/retention/cases/{case['id']}/dispose",
                             data={"reason": "", "password": PASSWORD, "csrf_token": token})
    assert no_reason.status_code == 302
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 0
    done = quality.post(f"/retention/cases/{case['id']}/dispose",
                        data={"reason": "retention ended, reviewed", "password": PASSWORD,
                              "totp_code": accounts.totp("quality"), "csrf_token": token},
                        follow_redirects=True)
    assert done.status_code == 200
    page = done.get_data(as_text=True)
    assert "was disposed" in page and "tombstones/" in page
    assert number not in quality.get("/retention/disposal").get_data(as_text=True)
    twice = quality.post(f"/retention/cases/{case['id']}/dispose",
                         data={"reason": "again", "password": PASSWORD, "csrf_token": token})
    assert twice.status_code == 409


def test_disposal_before_expiry_is_a_409_page(app: Flask, accounts: Accounts,
                                              catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    quality = app.test_client()
    accounts.login(quality, "quality")
    response = quality.post(f"/retention/cases/{case['id']}/dispose",
                            data={"reason": "tidy", "password": PASSWORD,
                                  "csrf_token": csrf_token(quality, f"/cases/{case['id']}")})
    assert response.status_code == 409
    assert "disposal before then is refused" in response.get_data(as_text=True)


@pytest.mark.parametrize("retention_seconds", [2])
def test_cli_report_and_dispose(app: Flask, accounts: Accounts,
                                catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    quality = accounts.user("quality").email
    runner = app.test_cli_runner()
    with app.app_context():
        number = db.session.get(Case, case["id"]).number  # type: ignore[union-attr]
    wait_until_disposable(app, case["id"])
    report = runner.invoke(args=["pdm", "retention-report", "--json", "--within-days", "1"])
    assert report.exit_code == 0, report.output
    data = json.loads(report.output)
    assert [r["number"] for r in data["eligible_for_disposal"]] == [number]
    assert "Test policy (seconds)" in data["policy"]
    listing = runner.invoke(args=["pdm", "dispose"])
    assert listing.exit_code == 0 and number in listing.output
    wrong = runner.invoke(args=["pdm", "dispose", "--case", number, "--signer", quality,
                                "--password", "wrong", "--reason", "ended"])
    assert wrong.exit_code == 2 and "password is not correct" in wrong.output
    no_code = runner.invoke(args=["pdm", "dispose", "--case", number, "--signer", quality,
                                  "--password", PASSWORD, "--reason", "ended"])
    assert no_code.exit_code == 2 and "authenticator code is not correct" in no_code.output
    done = runner.invoke(args=["pdm", "dispose", "--case", number, "--signer", quality,
                               "--password", PASSWORD, "--reason", "ended",
                               "--totp-code", accounts.totp("quality")])
    assert done.exit_code == 0, done.output
    assert f"{number} disposed" in done.output
    with app.app_context():
        tomb = db.session.scalar(sa.select(Tombstone))
        assert tomb is not None and tomb.state is TombstoneState.COMPLETE
        assert tomb.reason == "ended"
        assert not db.session.scalars(sa.select(StoredFile).where(
            StoredFile.state != FileState.DISPOSED, StoredFile.case_id == case["id"])).all()
    text = runner.invoke(args=["pdm", "retention-report"])
    assert text.exit_code == 0 and "eligible for disposal: 0" in text.output


def test_cli_dispose_before_expiry_fails_clearly(app: Flask, accounts: Accounts,
                                                 catalogue: dict[str, int]) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    quality = accounts.user("quality").email
    runner = app.test_cli_runner()
    with app.app_context():
        number = db.session.get(Case, case["id"]).number  # type: ignore[union-attr]
    early = runner.invoke(args=["pdm", "dispose", "--case", number, "--signer", quality,
                                "--password", PASSWORD, "--reason", "early"])
    assert early.exit_code == 2 and "disposal before then is refused" in early.output
    assert "IMDRF N58" in early.output
    assert runner.invoke(args=["pdm", "dispose", "--case", number]).exit_code == 2
    listing = runner.invoke(args=["pdm", "dispose"])
    assert listing.exit_code == 0 and "no case is eligible" in listing.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 0


def test_a_broken_policy_stops_serving_and_doctor_names_it(tmp_path: Path) -> None:
    bad = write_policy(tmp_path, "regimes: [{name: x, clock: shipped, periods: {other: 5 years}}]")
    with pytest.raises(ConfigurationError, match="regime 'x': field 'clock'"):
        create_app({"PDM_RETENTION_POLICY": bad, "SECRET_KEY": "k" * 40,
                    "PDM_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    _, problems = load_settings(tmp_path, environ={"PDM_RETENTION_POLICY": bad})
    assert any("PDM_RETENTION_POLICY" in p and "field 'clock'" in p for p in problems)
    check = _retention_check({"PDM_RETENTION_POLICY": bad})
    assert not check.ok and "field 'clock'" in check.detail
    seconds = _retention_check({"PDM_RETENTION_POLICY": seconds_policy(tmp_path, 5)})
    assert not seconds.ok and "seconds" in seconds.detail
    assert _retention_check({}).ok
