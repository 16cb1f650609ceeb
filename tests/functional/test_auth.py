"""Sign-in, sessions, CSRF, rate limiting and security headers (DOMAIN.md §8; IMDRF N60)."""

from __future__ import annotations

import pytest
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import AuditEvent, User
from tests.conftest import PASSWORD, Accounts, csrf_token


def test_login_with_wrong_password_says_so_generically(app: Flask, accounts: Accounts) -> None:
    user = accounts.user("engineer")
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": "wrong password!",
                                           "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Invalid e-mail address or password." in page
    # The same message for an unknown account: no account enumeration.
    response = client.post("/login", data={"email": "nobody@example.org", "password": "x" * 12,
                                           "csrf_token": csrf_token(client, "/login")})
    assert "Invalid e-mail address or password." in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302


@pytest.mark.parametrize("form", [
    {},
    {"email": "", "password": ""},
    {"email": "not-an-email", "password": "x"},
    {"email": "a@example.org\x00", "password": "x"},
    {"email": "é" * 5000 + "@example.org", "password": "x" * 10000},
])
def test_malformed_login_input_gives_a_page_not_a_500(app: Flask, form: dict[str, str]) -> None:
    client = app.test_client()
    form = dict(form, csrf_token=csrf_token(client, "/login"))
    response = client.post("/login", data=form)
    assert response.status_code in (200, 400)
    assert "Sign in" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(app: Flask, accounts: Accounts) -> None:
    user = accounts.user("engineer")
    client = app.test_client()
    response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert client.get("/dashboard").status_code == 302
    assert response.status_code in (200, 400)


def test_forms_need_a_csrf_token(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "admin")
    response = client.post("/admin/users/new", data={"email": "x@example.org"})
    assert response.status_code == 400
    assert "reload the page" in response.get_data(as_text=True)


def test_inactive_account_cannot_sign_in(app: Flask, accounts: Accounts) -> None:
    account = accounts.user("engineer")
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None
        user.active = False
        db.session.commit()
    client = app.test_client()
    client.post("/login", data={"email": account.email, "password": PASSWORD,
                                "csrf_token": csrf_token(client, "/login")})
    assert client.get("/dashboard").status_code == 302


def test_logout_ends_the_session(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "quality")
    assert client.get("/dashboard").status_code == 200
    token = csrf_token(client, "/account/tokens")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/dashboard").status_code == 302


def test_session_cookie_is_http_only_and_same_site(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    client.get("/login")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert cookie.http_only
    assert cookie.same_site == "Lax"


def test_security_headers_on_pages_and_api(app: Flask) -> None:
    client = app.test_client()
    for url in ("/login", "/api/v1/health", "/no-such-page"):
        headers = client.get(url).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "Strict-Transport-Security" not in headers  # plain HTTP in tests
    https = client.get("/login", base_url="https://localhost")
    assert https.headers["Strict-Transport-Security"].startswith("max-age=")


def test_pages_have_no_inline_script(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "admin", "clinician", "engineer", "quality")
    for url in ("/login", "/dashboard", "/admin/users", "/admin/users/new", "/account/tokens",
                "/admin/configuration", "/account/"):
        page = client.get(url).get_data(as_text=True)
        assert "<script>" not in page and "onclick=" not in page and "style=" not in page, url


def test_successful_sign_in_is_tracked(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    account = accounts.login(client, "clinician")
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None and user.login_count == 1
        assert user.current_login_at is not None and user.current_login_at.tzinfo is not None
        created = db.session.query(AuditEvent).filter_by(action="user.created").count()
        assert created >= 1
