"""Errors render as pages or as the JSON error shape; outages are 503 with Retry-After."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from pdm_records import create_app
from tests.conftest import Accounts, _base_config


def test_oversized_request_is_413_naming_the_limit(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    token = accounts.token("admin")
    body = b"x" * (2 * 1024 * 1024)
    api = client.post("/api/v1/users", data=body, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert api.status_code == 413
    payload = api.get_json()
    assert payload["error"] == "payload_too_large"
    assert "1 MiB" in payload["message"]
    accounts.login(client, "admin")
    page = client.post("/account/tokens", data={"name": "x" * (2 * 1024 * 1024)})
    assert page.status_code == 413
    assert "1 MiB" in page.get_data(as_text=True)


def test_not_found_page_is_friendly(app: Flask) -> None:
    response = app.test_client().get("/no/such/page")
    assert response.status_code == 404
    text = response.get_data(as_text=True)
    assert "Not found" in text and "Back to the dashboard" in text


def test_database_down_is_503_with_retry_after(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path / "instance"))
    # Nothing listens on port 1: every connection attempt is refused at once.
    config = _base_config("postgresql+psycopg://127.0.0.1:1/nothing", tmp_path)
    app = create_app(config)
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    login = client.post("/login", data={"email": "a@example.org", "password": "x" * 12})
    assert login.status_code == 503
    assert login.headers["Retry-After"] == "30"
    assert "database is unavailable" in login.get_data(as_text=True)
    api = client.get("/api/v1/me", headers={"Authorization": "Bearer pdm_abc"})
    assert api.status_code == 503
    assert api.get_json()["error"] == "service_unavailable"
    health = client.get("/api/v1/health")
    assert health.status_code == 503
    assert any("database" in p for p in health.get_json()["problems"])


def test_storage_down_is_503_on_health(app: Flask, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the store's folder should be")
    app.config["PDM_STORAGE_PATH"] = str(blocker)
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert any("object store" in p for p in response.get_json()["problems"])


def test_healthy_health(app: Flask) -> None:
    response = app.test_client().get("/api/v1/health")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "problems": []}


@pytest.fixture
def failing_app(app: Flask) -> Flask:
    from pdm_records.access import requires
    from pdm_records.permissions import Permission

    @app.route("/boom")
    @requires(Permission.PUBLIC)
    def boom() -> Any:
        raise RuntimeError("secret internal detail")

    @app.route("/api/v1/conflict")
    @requires(Permission.PUBLIC)
    def api_conflict() -> Any:
        from pdm_records.errors import Conflict

        raise Conflict("The case is released; it cannot be edited. Allowed: deliver.")

    @app.route("/conflict")
    @requires(Permission.PUBLIC)
    def conflict() -> Any:
        from pdm_records.errors import Conflict

        raise Conflict("The case is released; it cannot be edited. Allowed: deliver.")

    @app.route("/api/v1/boom")
    @requires(Permission.PUBLIC)
    def api_boom() -> Any:
        raise RuntimeError("secret internal detail")

    return app


def test_unexpected_errors_show_no_internals(failing_app: Flask) -> None:
    client = failing_app.test_client()
    page = client.get("/boom")
    assert page.status_code == 500
    assert "secret internal detail" not in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    api = client.get("/api/v1/boom")
    assert api.status_code == 500
    assert api.get_json()["error"] == "internal_error"
    assert "secret internal detail" not in api.get_data(as_text=True)


def test_conflicts_are_409_with_the_reason(failing_app: Flask) -> None:
    client = failing_app.test_client()
    api = client.get("/api/v1/conflict")
    assert api.status_code == 409
    assert api.get_json() == {"error": "conflict", "field_errors": {},
                              "message": "The case is released; it cannot be edited. "
                                         "Allowed: deliver."}
    page = client.get("/conflict")
    assert page.status_code == 409
    assert "Not possible in the current state" in page.get_data(as_text=True)


def test_behind_a_proxy_the_forwarded_scheme_turns_on_hsts(app: Flask) -> None:
    from pdm_records import create_app

    config = {k: app.config[k] for k in ("PDM_DATABASE_URL", "SQLALCHEMY_DATABASE_URI",
                                          "SECRET_KEY", "PDM_STORAGE_PATH")}
    proxied = create_app({**config, "PDM_PROXY_COUNT": 1})
    response = proxied.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    direct = app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in direct.headers


@pytest.mark.parametrize("path", [
    "/api/v1/cases/2147483648", "/api/v1/cases/99999999999999999999", "/api/v1/cases/0",
    "/api/v1/tokens/2147483648", "/cases/2147483648", "/admin/users/2147483648/unlock"])
def test_ids_beyond_a_32_bit_row_id_are_404_before_any_query(
        app: Flask, accounts: Accounts, path: str) -> None:
    """Row ids are PostgreSQL ``integer``: a larger id must be "not found" on every database,
    not an out-of-range error from PostgreSQL alone (found by schemathesis on PostgreSQL)."""
    from tests.requests_support import bearer

    client = app.test_client()
    if path.startswith("/api/"):
        method = "DELETE" if "/tokens/" in path else "GET"
        response = client.open(path, method=method, headers=bearer(accounts.token("admin")))
        assert response.status_code == 404, response.get_data(as_text=True)[:300]
        assert set(response.get_json()) == {"error", "message", "field_errors"}
    else:
        accounts.login(client, "admin")
        method = "POST" if path.endswith("/unlock") else "GET"
        response = client.open(path, method=method)
        assert response.status_code == 404, response.status_code


def test_the_openapi_document_states_the_id_range(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    params = spec["paths"]["/api/v1/cases/{case_id}"]["parameters"]
    case_id = next(p for p in params if p["name"] == "case_id")["schema"]
    assert case_id["minimum"] == 1 and case_id["maximum"] == 2**31 - 1
