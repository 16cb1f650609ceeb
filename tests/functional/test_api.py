"""The JSON API: bearer tokens, one error shape, OpenAPI document."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask

from pdm_records.clock import utcnow
from pdm_records.extensions import db
from pdm_records.models import ApiToken, AuditEvent, User
from tests.conftest import Accounts, table_counts


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_error_shape(body: dict[str, object], error: str) -> None:
    assert set(body) == {"error", "message", "field_errors"}
    assert body["error"] == error
    assert isinstance(body["message"], str) and body["message"]


def test_me_with_a_valid_token(app: Flask, accounts: Accounts) -> None:
    token = accounts.token("engineer")
    response = app.test_client().get("/api/v1/me", headers=_bearer(token))
    assert response.status_code == 200
    body = response.get_json()
    assert body["email"] == "test-engineer@example.org"
    assert body["roles"] == ["engineer"]
    assert "password" not in body


@pytest.mark.parametrize("header", [
    None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer pdm_not-a-real-token",
    "Bearer " + "x" * 5000, "bearer\tpdm_x",
])
def test_missing_or_bad_token_is_401_with_the_error_shape(app: Flask, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = app.test_client().get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert_error_shape(response.get_json(), "unauthorized")


def test_api_ignores_session_cookies(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "engineer")
    assert client.get("/dashboard").status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_revoked_and_expired_tokens_stop_working(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    token = accounts.token("clinician")
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 200
    listed = client.get("/api/v1/tokens", headers=_bearer(token)).get_json()
    assert len(listed) == 1 and "token" not in listed[0]
    assert client.delete(f"/api/v1/tokens/{listed[0]['id']}",
                         headers=_bearer(token)).status_code == 204
    assert client.get("/api/v1/me", headers=_bearer(token)).status_code == 401

    other = accounts.token("clinician")
    with app.app_context():
        for row in db.session.query(ApiToken).filter(ApiToken.revoked_at.is_(None)):
            row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get("/api/v1/me", headers=_bearer(other)).status_code == 401


def test_token_of_a_deactivated_account_stops_working(app: Flask, accounts: Accounts) -> None:
    token = accounts.token("quality")
    with app.app_context():
        user = db.session.query(User).filter_by(email="test-quality@example.org").one()
        user.active = False
        db.session.commit()
    assert app.test_client().get("/api/v1/me", headers=_bearer(token)).status_code == 401


def test_create_token_through_the_api_returns_the_secret_once(
        app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    token = accounts.token("engineer")
    response = client.post("/api/v1/tokens", json={"name": "planning station"},
                           headers=_bearer(token))
    assert response.status_code == 201
    secret = response.get_json()["token"]
    assert secret.startswith("pdm_")
    assert client.get("/api/v1/me", headers=_bearer(secret)).status_code == 200
    with app.app_context():
        stored = db.session.query(ApiToken).filter_by(name="planning station").one()
        assert secret not in (stored.token_sha256, stored.prefix)
        days = (stored.expires_at - stored.created_at).days
        assert days == app.config["PDM_TOKEN_EXPIRY_DAYS"] == 90


def test_admin_creates_a_user_through_the_api(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    token = accounts.token("admin")
    response = client.post("/api/v1/users", headers=_bearer(token), json={
        "email": "new.clinician@example.org", "printed_name": "Dr O'Brien <Ünal>",
        "password": "a long enough passphrase", "roles": ["clinician"],
        "registration_number": "GMC-7654321"})
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["printed_name"] == "Dr O'Brien <Ünal>"
    with app.app_context():
        event = db.session.query(AuditEvent).filter_by(action="user.created").order_by(
            AuditEvent.id.desc()).first()
        assert event is not None and event.after is not None
        assert event.after["email"] == "new.clinician@example.org"
        assert "password" not in event.after
    page = client.get("/api/v1/users?page=1&per_page=2", headers=_bearer(token)).get_json()
    assert page["total"] == 2 and page["per_page"] == 2 and len(page["items"]) == 2


@pytest.mark.parametrize(("payload", "field"), [
    ({"printed_name": "X Y", "password": "a long enough passphrase", "roles": ["engineer"]},
     "email"),
    ({"email": "bad", "printed_name": "X Y", "password": "a long enough passphrase",
      "roles": ["engineer"]}, "email"),
    ({"email": "a@example.org", "printed_name": "X Y", "password": "short",
      "roles": ["engineer"]}, "password"),
    ({"email": "a@example.org", "printed_name": "X Y", "password": "a long enough passphrase",
      "roles": ["surgeon"]}, "roles.0"),
    ({"email": "a@example.org", "printed_name": "X Y", "password": "a long enough passphrase",
      "roles": []}, "roles"),
    ({"email": "a@example.org", "printed_name": "X\u202eY", "password": "a long enough pass",
      "roles": ["engineer"]}, "printed_name"),
    ({"email": "a@example.org", "printed_name": "X Y", "password": "a long enough passphrase",
      "roles": ["clinician"]}, "registration_number"),
    ({"email": "test-admin@example.org", "printed_name": "X Y",
      "password": "a long enough passphrase", "roles": ["engineer"]}, "email"),
    ({"email": "a@example.org", "printed_name": "X Y", "password": "a long enough passphrase",
      "roles": ["engineer"], "site_id": 424242}, "site_id"),
])
def test_user_creation_errors_name_the_field_and_change_nothing(
        app: Flask, accounts: Accounts, payload: dict[str, object], field: str) -> None:
    token = accounts.token("admin")
    before = table_counts(app)
    response = app.test_client().post("/api/v1/users", json=payload, headers=_bearer(token))
    assert response.status_code == 422
    body = response.get_json()
    assert_error_shape(body, "validation_error")
    assert field in body["field_errors"], body
    after = table_counts(app)
    assert after == before


def test_malformed_json_is_a_400(app: Flask, accounts: Accounts) -> None:
    token = accounts.token("admin")
    response = app.test_client().post(
        "/api/v1/users", data=b'{"email": ', headers={**_bearer(token),
                                                      "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.get_json()["error"] in ("bad_request", "validation_error")


def test_unknown_api_route_and_wrong_method_use_the_error_shape(
        app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404
    assert_error_shape(missing.get_json(), "not_found")
    wrong = client.put("/api/v1/me", headers=_bearer(accounts.token("engineer")))
    assert wrong.status_code == 405
    assert_error_shape(wrong.get_json(), "method_not_allowed")


def test_openapi_document_describes_the_api(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in ("/api/v1/me", "/api/v1/users", "/api/v1/tokens", "/api/v1/device-types",
                 "/api/v1/health"):
        assert path in spec["paths"], path
    assert "requestBody" in spec["paths"]["/api/v1/users"]["post"]


def test_catalogue_lists_device_types(app: Flask, accounts: Accounts) -> None:
    from pdm_records.services.demo import load_demo

    with app.app_context():
        load_demo(db.session, password="demo password 123")
        db.session.commit()
    body = app.test_client().get("/api/v1/device-types",
                                 headers=_bearer(accounts.token("clinician"))).get_json()
    implant = next(d for d in body if "cranial" in d["name"])
    guide = next(d for d in body if "guide" in d["name"])
    assert implant["implantable"] is True and guide["implantable"] is False
    assert implant["category"] == "patient_matched"
    assert {p["name"] for p in implant["parameters"]} >= {"wall_thickness", "max_diameter"}
