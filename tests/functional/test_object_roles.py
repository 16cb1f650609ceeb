"""The object × role matrix (least privilege on every object; DOMAIN.md §8; 21 CFR Part 11
§11.10(d), (g)).

For every case-scoped route, web and API, and every kind of actor, the test asserts that the
actor reaches the object (any answer but 403/404: a state rule may still say 409 or 422) exactly
when the role allows the route (the literal route × role table) **and** the case is visible to
the actor (the literal visibility table below): clinicians their own cases, or their
institution's while it shares cases; engineers the queue and the cases assigned to them; quality
all; administrators none. Everyone else gets 404 (no existence leak) or 403.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import Site, SiteKind, User
from pdm_records.services import jobs
from tests.conftest import PASSWORD, Accounts
from tests.functional.test_route_roles import ROUTE_ROLE_TABLE
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create

OWN, OTHER, SITE_OFF, SITE_ON = "own clinician", "other clinician", "site clinician", \
    "site clinician (sharing on)"
ASSIGNED, OTHER_ENG, QUALITY, ADMIN = "assigned engineer", "other engineer", "quality", "admin"
ROLE_OF = {OWN: "clinician", OTHER: "clinician", SITE_OFF: "clinician", SITE_ON: "clinician",
           ASSIGNED: "engineer", OTHER_ENG: "engineer", QUALITY: "quality", ADMIN: "admin"}

# Who sees which case. Literal on purpose.
VISIBLE = {
    # accepted by the assigned engineer (now theirs), then in design
    "assigned": {OWN, SITE_ON, ASSIGNED, QUALITY},
    # submitted, waiting in the queue: every engineer may take it
    "queued": {OWN, SITE_ON, ASSIGNED, OTHER_ENG, QUALITY},
}

# Changing the request is the prescriber's alone: a colleague who sees a shared case reads it
# and joins the conversation, but does not edit someone else's prescription (403).
PRESCRIBER_ONLY = {("cases.edit", "POST"), ("cases.remove_attachment", "POST"),
                   ("api_cases.update_request", "PATCH"), ("api_cases.remove_attachment", "DELETE")}

# Case-scoped routes: (endpoint, method, url template, how to call it).
ROUTES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("cases.detail", "GET", "/cases/{case}", {}),
    ("cases.edit", "GET", "/cases/{case}/edit", {}),
    ("cases.edit", "POST", "/cases/{case}/edit", {"data": {}}),
    ("cases.download", "GET", "/cases/{case}/attachments/{attachment}", {}),
    ("cases.comment", "POST", "/cases/{case}/comments", {"data": {"body": "hello"}}),
    ("cases.transition", "POST", "/cases/{case}/transition", {"data": {"to": "bogus"}}),
    ("cases.upload", "POST", "/cases/{case}/attachments", {"data": {"kind": "document"}}),
    ("cases.remove_attachment", "POST", "/cases/{case}/attachments/{attachment}/remove", {}),
    ("cases.upload_iteration", "POST", "/cases/{case}/iterations", {"data": {}}),
    ("cases.verify", "POST", "/cases/{case}/iterations/1/verify", {}),
    ("cases.assign", "POST", "/cases/{case}/assignee", {"data": {"engineer_id": "0"}}),
    ("cases.confirm", "POST", "/cases/{case}/iterations/1/confirmations",
     {"data": {"met:wall_thickness": "yes"}}),
    ("cases.export_package", "POST", "/cases/{case}/package", {}),
    ("api_cases.get_case", "GET", "/api/v1/cases/{case}", {}),
    ("api_cases.update_request", "PATCH", "/api/v1/cases/{case}/request", {"json": {}}),
    ("api_cases.add_attachment", "POST", "/api/v1/cases/{case}/attachments", {"data": {}}),
    ("api_cases.remove_attachment", "DELETE", "/api/v1/cases/{case}/attachments/{attachment}",
     {}),
    ("api_cases.download_attachment", "GET",
     "/api/v1/cases/{case}/attachments/{attachment}/content", {}),
    ("api_cases.add_iteration", "POST", "/api/v1/cases/{case}/iterations", {"data": {}}),
    ("api_cases.verify_iteration", "POST", "/api/v1/cases/{case}/iterations/1/verify", {}),
    # A well-formed body, so that the answer comes from the case check, not the schema.
    ("api_cases.confirm_characteristics", "POST",
     "/api/v1/cases/{case}/iterations/1/confirmations",
     {"json": {"items": [{"item": "wall_thickness", "met": True}]}}),
    ("api_cases.get_job", "GET", "/api/v1/cases/{case}/jobs/{job}", {}),
    ("api_cases.submit", "POST", "/api/v1/cases/{case}/submit", {"json": {"password": "x"}}),
    ("api_cases.transition", "POST", "/api/v1/cases/{case}/transitions",
     {"json": {"to": "bogus"}}),
    ("api_cases.comment", "POST", "/api/v1/cases/{case}/comments", {"json": {"body": "hi"}}),
    ("api_cases.assign", "POST", "/api/v1/cases/{case}/assignee", {"json": {"engineer_id": 1}}),
]


def test_every_case_scoped_route_is_in_the_matrix() -> None:
    case_scoped = {key for key in ROUTE_ROLE_TABLE if key[0].startswith(("cases.", "api_cases."))
                   and key[0] not in {"cases.index", "cases.choose_device_type", "cases.new",
                                      "cases.notifications", "api_cases.list_cases",
                                      "api_cases.create_case"}}
    assert case_scoped == {(endpoint, method) for endpoint, method, _, _ in ROUTES}


@pytest.fixture
def world(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    with app.app_context():
        elsewhere = Site(name="Other Hospital", kind=SiteKind.HEALTH_INSTITUTION)
        db.session.add(elsewhere)
        db.session.commit()
        other_site = elsewhere.id
    people = {
        OWN: accounts.user("clinician", email="own@example.org"),
        OTHER: accounts.user("clinician", email="other@example.org"),
        SITE_OFF: accounts.user("clinician", email="colleague@example.org"),
        ASSIGNED: accounts.user("engineer", email="assigned@example.org"),
        OTHER_ENG: accounts.user("engineer", email="other.eng@example.org"),
        QUALITY: accounts.user("quality"),
        ADMIN: accounts.user("admin"),
    }
    people[SITE_ON] = people[SITE_OFF]
    with app.app_context():
        for who, site in ((OWN, catalogue["hospital"]), (SITE_OFF, catalogue["hospital"]),
                          (OTHER, other_site)):
            user = db.session.get(User, people[who].id)
            assert user is not None
            user.site_id = site
        db.session.commit()
    tokens = {who: accounts.token(ROLE_OF[who]) if who in (QUALITY, ADMIN) else None
              for who in people}

    def token_of(who: str) -> str:
        if tokens[who] is None:
            from pdm_records.services.users import create_token

            with app.app_context():
                user = db.session.get(User, people[who].id)
                assert user is not None
                _, tokens[who] = create_token(db.session, actor=None, user=user, name="t",
                                              expiry_days=1)
                db.session.commit()
        return str(tokens[who])

    cases = {}
    for name in ("assigned", "queued"):
        case = create(app, token_of(OWN), {**common(catalogue, "implant"), **PATIENT_MATCHED,
                                           "patient_code": f"PAT-{name.upper()}"})
        added = attach(app, token_of(OWN), case["id"], binary_stl(), "plan.stl")
        assert added.status_code == 201
        submitted = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                           json={"password": PASSWORD},
                                           headers=bearer(token_of(OWN)))
        assert submitted.status_code == 200, submitted.get_json()
        cases[name] = {"case": case["id"], "attachment": added.get_json()["id"]}
    accepted = app.test_client().post(f"/api/v1/cases/{cases['assigned']['case']}/transitions",
                                      json={"to": "accepted"}, headers=bearer(token_of(ASSIGNED)))
    assert accepted.status_code == 200 and accepted.get_json()["assigned_engineer_id"] == \
        people[ASSIGNED].id
    upload = app.test_client().post(
        f"/api/v1/cases/{cases['assigned']['case']}/iterations", headers=bearer(token_of(
            ASSIGNED)), data={"file": (io.BytesIO(binary_stl()), "design.stl"), "units": "mm"},
        content_type="multipart/form-data")
    assert upload.status_code == 201, upload.get_json()
    with app.app_context():
        owner = db.session.get(User, people[ASSIGNED].id)
        assert owner is not None
        for name in cases:
            job = jobs.enqueue(db.session, kind="verify_iteration", payload={"number": 1},
                               actor=owner, case_id=cases[name]["case"])
            cases[name]["job"] = job.id
        db.session.commit()
    return {"people": people, "token_of": token_of, "cases": cases,
            "hospital": catalogue["hospital"]}


def _share(app: Flask, site_id: int, share: bool) -> None:
    with app.app_context():
        site = db.session.get(Site, site_id)
        assert site is not None
        site.share_cases = share
        db.session.commit()


@pytest.mark.usefixtures("no_csrf")
def test_each_actor_reaches_exactly_the_cases_it_may(app: Flask, accounts: Accounts,
                                                      world: dict[str, Any]) -> None:
    failures = []
    checked = 0
    for who in (OWN, OTHER, SITE_OFF, SITE_ON, ASSIGNED, OTHER_ENG, QUALITY, ADMIN):
        _share(app, world["hospital"], who == SITE_ON)
        browser = app.test_client()
        account = world["people"][who]
        accounts.login(browser, *account.roles) if who in (QUALITY, ADMIN) else _login(
            browser, account.email)
        headers = bearer(world["token_of"](who))
        for name, ids in world["cases"].items():
            for endpoint, method, template, call in ROUTES:
                url = template.format(**ids)
                is_api = url.startswith("/api/")
                client_kwargs = dict(call)
                if is_api:
                    client_kwargs["headers"] = headers
                response = browser.open(url, method=method, **client_kwargs)
                response.close()
                location = response.headers.get("Location", "")
                denied = response.status_code in (403, 404) or "/login" in location
                expected = ROLE_OF[who] in ROUTE_ROLE_TABLE[(endpoint, method)] and \
                    who in VISIBLE[name] and not (
                        (endpoint, method) in PRESCRIBER_ONLY and who != OWN)
                checked += 1
                if denied == expected:
                    failures.append(f"{who} {method} {url} ({name} case): "
                                    f"{response.status_code} {location}, expected "
                                    f"{'allowed' if expected else 'denied'}")
                assert response.status_code != 500, (who, url)
    assert checked == 8 * 2 * len(ROUTES)
    assert not failures, "\n".join(failures)


def _login(client: Any, email: str) -> None:
    response = client.post("/login", data={"email": email, "password": PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]


def test_quality_reassigns_and_the_previous_engineer_loses_the_case(
        app: Flask, world: dict[str, Any]) -> None:
    token_of, case_id = world["token_of"], world["cases"]["assigned"]["case"]
    client = app.test_client()
    assert client.get(f"/api/v1/cases/{case_id}",
                      headers=bearer(token_of(OTHER_ENG))).status_code == 404
    not_engineer = client.post(f"/api/v1/cases/{case_id}/assignee", headers=bearer(
        token_of(QUALITY)), json={"engineer_id": world["people"][OWN].id})
    assert not_engineer.status_code == 422 and "engineer_id" in not_engineer.get_json()[
        "field_errors"]
    moved = client.post(f"/api/v1/cases/{case_id}/assignee", headers=bearer(token_of(QUALITY)),
                        json={"engineer_id": world["people"][OTHER_ENG].id})
    assert moved.status_code == 200, moved.get_json()
    assert moved.get_json()["assigned_engineer_id"] == world["people"][OTHER_ENG].id
    assert client.get(f"/api/v1/cases/{case_id}",
                      headers=bearer(token_of(OTHER_ENG))).status_code == 200
    assert client.get(f"/api/v1/cases/{case_id}",
                      headers=bearer(token_of(ASSIGNED))).status_code == 404
    with app.app_context():
        from pdm_records.models import AuditEvent

        assert db.session.query(AuditEvent).filter_by(action="case.assigned").count() == 1


def test_admins_cannot_sign_without_the_role(app: Flask, accounts: Accounts) -> None:
    """An administrator holds no signing authority (21 CFR Part 11 §11.10(g))."""
    from pdm_records.errors import Forbidden
    from pdm_records.models import SignatureMeaning
    from pdm_records.services.signatures import check_signing_role

    admin = accounts.user("admin")
    with app.app_context():
        user = db.session.get(User, admin.id)
        assert user is not None
        for meaning in SignatureMeaning:
            with pytest.raises(Forbidden):
                check_signing_role(user, meaning)
