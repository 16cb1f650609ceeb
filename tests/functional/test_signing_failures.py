"""A wrong password or authenticator code on ANY route that signs is a recorded failed
authentication, whatever the route renders (JSON 422, a redirect with a message, a form).

21 CFR Part 11 §11.300(d) asks that attempts at unauthorised use be detected and reported, and
§11.200 that the signer re-authenticate at signing; DOMAIN.md §8 adds lock-out and rate limits.
So, on every signing route: one ``auth.failed`` audit event (context ``signing``, committed on
its own although the request is rolled back), one step towards the lock-out, no signature, the
field named in the refusal, and the per-account signing rate limit (429 before any credential
is checked). ``SIGNING_ROUTES`` must list exactly ``security.signing.SIGNING_ENDPOINTS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.extensions import db
from pdm_records.models import AuditEvent, CaseStatus, LegalHold, Signature, User
from pdm_records.security.signing import SIGNING_ENDPOINTS
from tests.conftest import PASSWORD, Accounts, csrf_token
from tests.functional.test_envelopes_web import SECOND_QUALITY, login_as
from tests.functional.test_requests_workflow import force_status
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create
from tests.retention_support import seconds_policy, wait_until_disposable

WRONG = "not the password at all"


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    # Records may be disposed of one second after signing, so that the disposal route reaches
    # its signature check (before expiry it refuses with a 409 before checking anything).
    return {"PDM_RETENTION_POLICY": seconds_policy(tmp_path, 1)}


@dataclass
class Attempt:
    """One signing request: ``send(password, totp_code)`` → response; who signs."""

    send: Callable[[str, str | None], Any]
    signer_id: int
    enrolled: bool
    browser: FlaskClient | None = None  # the signed-in browser of a form (None: the API)


def _signed_case(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                 attached: bool = True) -> int:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    if attached:
        assert attach(app, clinician, case["id"], binary_stl(), "plan.stl").status_code == 201
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(clinician))
    assert response.status_code == 200, response.get_json()
    return int(case["id"])


def _browser(app: Flask, accounts: Accounts, role: str) -> FlaskClient:
    client = app.test_client()
    accounts.login(client, role)
    return client


def _form(client: FlaskClient, url: str, page: str) -> Callable[[str, str | None], Any]:
    token = csrf_token(client, page)

    def send(password: str, code: str | None) -> Any:
        data = {"password": password, "csrf_token": token, "reason": "court order 2026/117",
                "to": "approved"}
        if code is not None:
            data["totp_code"] = code
        return client.post(url, data=data)
    return send


def _api(app: Flask, token: str, url: str, body: dict[str, Any]) -> Callable[[str, str | None],
                                                                             Any]:
    def send(password: str, code: str | None) -> Any:
        payload = {**body, "password": password}
        if code is not None:
            payload["totp_code"] = code
        return app.test_client().post(url, json=payload, headers=bearer(token))
    return send


def _draft_envelope(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> int:
    response = app.test_client().post("/api/v1/envelopes", headers=bearer(
        accounts.token("quality")), json={"device_type_id": catalogue["guide"],
                                          "definition": {"max_faces": 100000, "min_faces": 4}})
    assert response.status_code == 201, response.get_json()
    return int(response.get_json()["id"])


# -- one request per signing route ------------------------------------------------------------
def _web_transition(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    case_id = _signed_case(app, accounts, catalogue)
    force_status(app, case_id, CaseStatus.AWAITING_APPROVAL)
    client = _browser(app, accounts, "clinician")
    return Attempt(_form(client, f"/cases/{case_id}/transition", f"/cases/{case_id}"),
                   accounts.user("clinician").id, False, client)


def _api_submit(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    assert attach(app, clinician, case["id"], binary_stl(), "plan.stl").status_code == 201
    return Attempt(_api(app, clinician, f"/api/v1/cases/{case['id']}/submit", {}),
                   accounts.user("clinician").id, False)


def _api_transition(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    case_id = _signed_case(app, accounts, catalogue)
    force_status(app, case_id, CaseStatus.AWAITING_APPROVAL)
    return Attempt(_api(app, accounts.token("clinician"), f"/api/v1/cases/{case_id}/transitions",
                        {"to": "approved"}), accounts.user("clinician").id, False)


def _web_approve_envelope(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    version_id = _draft_envelope(app, accounts, catalogue)
    client = app.test_client()
    login_as(client, accounts, SECOND_QUALITY)
    return Attempt(_form(client, f"/envelopes/versions/{version_id}/approve", "/envelopes/"),
                   accounts.user("quality", email=SECOND_QUALITY).id, True, client)


def _api_approve_envelope(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    version_id = _draft_envelope(app, accounts, catalogue)
    approver = accounts.user("quality", email=SECOND_QUALITY)
    return Attempt(_api(app, accounts.token("quality", email=SECOND_QUALITY),
                        f"/api/v1/envelopes/{version_id}/approve", {}), approver.id, True)


def _place_hold(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    case_id = _signed_case(app, accounts, catalogue)
    client = _browser(app, accounts, "quality")
    return Attempt(_form(client, f"/retention/cases/{case_id}/holds", f"/cases/{case_id}"),
                   accounts.user("quality").id, True, client)


def _release_hold(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    case_id = _signed_case(app, accounts, catalogue)
    client = _browser(app, accounts, "quality")
    placed = _form(client, f"/retention/cases/{case_id}/holds", f"/cases/{case_id}")(
        PASSWORD, accounts.totp("quality"))
    assert placed.status_code == 302
    with app.app_context():
        hold_id = db.session.scalars(sa.select(LegalHold.id).where(
            LegalHold.case_id == case_id)).one()
    return Attempt(_form(client, f"/retention/cases/{case_id}/holds/{hold_id}/release",
                         f"/cases/{case_id}"), accounts.user("quality").id, True, client)


def _dispose(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    # No attachment: a file uploaded to a draft keeps its own (default) lock, longer than the
    # one-second policy.
    case_id = _signed_case(app, accounts, catalogue, attached=False)
    wait_until_disposable(app, case_id)  # the one-second policy
    client = _browser(app, accounts, "quality")
    return Attempt(_form(client, f"/retention/cases/{case_id}/dispose", f"/cases/{case_id}"),
                   accounts.user("quality").id, True, client)


def _reset_second_factor(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> Attempt:
    # An administrator re-authenticates (password and code) to reset a lost second factor.
    lost = accounts.user("engineer", email="lost-phone@example.org", enrol=True)
    client = _browser(app, accounts, "admin")
    return Attempt(_form(client, f"/admin/users/{lost.id}/reset-mfa", "/admin/users"),
                   accounts.user("admin").id, True, client)


SIGNING_ROUTES: dict[str, Callable[[Flask, Accounts, dict[str, int]], Attempt]] = {
    "cases.transition": _web_transition,
    "api_cases.submit": _api_submit,
    "api_cases.transition": _api_transition,
    "envelopes.approve": _web_approve_envelope,
    "api_envelopes.approve_envelope": _api_approve_envelope,
    "retention.place_hold": _place_hold,
    "retention.release_hold": _release_hold,
    "retention.dispose": _dispose,
    "admin.reset_mfa": _reset_second_factor,
}


def test_every_signing_route_is_rate_limited_and_listed_here(app: Flask) -> None:
    signing = {endpoint for endpoint in app.view_functions
               if endpoint in SIGNING_ENDPOINTS}
    assert signing == SIGNING_ENDPOINTS, "SIGNING_ENDPOINTS names a route that does not exist"
    assert set(SIGNING_ROUTES) == SIGNING_ENDPOINTS


def _failures(app: Flask, user_id: int) -> tuple[list[dict[str, Any]], int, int]:
    with app.app_context():
        events = [e.after for e in db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "auth.failed", AuditEvent.target_id == str(user_id)))]
        user = db.session.get(User, user_id)
        assert user is not None
        signatures = db.session.scalar(sa.select(sa.func.count()).select_from(Signature)) or 0
        return events, int(user.failed_auth_count or 0), int(signatures)


def _refusal_text(response: Any, attempt: Attempt) -> str:
    if attempt.browser is None:
        assert response.status_code == 422, response.get_data(as_text=True)[:300]
        return str(response.get_json())
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    page = attempt.browser.get(response.headers["Location"]).get_data(as_text=True)
    flashes = re.findall(r'<div class="flash flash-error"[^>]*>(.*?)</div>', page, re.S)
    assert flashes, "no error message after the refused signature"
    return " ".join(flashes)


# Routes whose signer (quality, admin) is enrolled in two-factor sign-in: a code is asked for.
ENROLLED = {e for e in SIGNING_ROUTES if e.startswith(("envelopes.", "api_envelopes.",
                                                        "retention.", "admin."))}
CASES = [(e, "password") for e in sorted(SIGNING_ROUTES)] + [(e, "totp") for e in sorted(ENROLLED)]


@pytest.mark.parametrize(("endpoint", "kind"), CASES, ids=[f"{e}-{k}" for e, k in CASES])
def test_a_failed_signature_is_recorded_counted_and_rate_limited(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], endpoint: str,
        kind: str) -> None:
    attempt = SIGNING_ROUTES[endpoint](app, accounts, catalogue)
    assert attempt.enrolled == (endpoint in ENROLLED)
    app.config["PDM_SIGNING_RATE_LIMIT"] = "1 per minute"
    events, count, signatures = _failures(app, attempt.signer_id)
    password, code = (WRONG, None) if kind == "password" else (PASSWORD, "000000")
    response = attempt.send(password, code)
    text = _refusal_text(response, attempt)
    after_events, after_count, after_signatures = _failures(app, attempt.signer_id)
    assert after_signatures == signatures, "a refused signature was stored"
    new = after_events[len(events):]
    assert [(e["kind"], e["context"]) for e in new] == [(kind, "signing")], new
    assert after_count == count + 1, "the failure did not count towards the lock-out"
    if attempt.browser is None:
        field = "password" if kind == "password" else "totp_code"
        assert field in response.get_json()["field_errors"]
    else:
        assert ("password is not correct" if kind == "password"
                else "authenticator code is not correct") in text
    again = attempt.send(password, code)
    assert again.status_code == 429, again.get_data(as_text=True)[:300]
    assert len(_failures(app, attempt.signer_id)[0]) == len(after_events), (
        "a rate-limited attempt was still checked")
