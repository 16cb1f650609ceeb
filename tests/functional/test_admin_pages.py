"""Administrators manage accounts in the browser; forms keep input and show messages."""

from __future__ import annotations

from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import User
from tests.conftest import Accounts, csrf_token, table_counts


def test_admin_creates_an_account_in_the_browser(app: Flask, accounts: Accounts,
                                                 site_id: int) -> None:
    client = app.test_client()
    accounts.login(client, "admin")
    response = client.post("/admin/users/new", data={
        "csrf_token": csrf_token(client, "/admin/users/new"),
        "email": "surgeon@example.org", "printed_name": "Dr Zoë <b>Bold</b> O'Hara",
        "password": "a long enough passphrase", "roles": ["clinician", "quality"],
        "registration_number": "GMC-1", "site_id": str(site_id)}, follow_redirects=True)
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Account surgeon@example.org created." in page
    # Stored verbatim, rendered escaped.
    assert "Dr Zoë &lt;b&gt;Bold&lt;/b&gt; O&#39;Hara" in page
    assert "<b>Bold</b>" not in page
    with app.app_context():
        user = db.session.query(User).filter_by(email="surgeon@example.org").one()
        assert user.printed_name == "Dr Zoë <b>Bold</b> O'Hara"
        assert user.role_names == ["clinician", "quality"]
        assert user.site_id == site_id


def test_form_errors_keep_input_and_sit_next_to_fields(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "admin")
    before = table_counts(app)
    response = client.post("/admin/users/new", data={
        "csrf_token": csrf_token(client, "/admin/users/new"),
        "email": "not-an-address", "printed_name": "Kept Name", "password": "short",
        "roles": ["clinician"]})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert 'value="Kept Name"' in page and 'value="not-an-address"' in page
    assert 'id="email-error"' in page and 'id="password-error"' in page
    assert "Enter a valid e-mail address" in page
    assert 'value="clinician" checked' in page
    assert table_counts(app) == before


def test_admin_deactivates_an_account_but_not_their_own(app: Flask, accounts: Accounts) -> None:
    target = accounts.user("engineer")
    client = app.test_client()
    admin = accounts.login(client, "admin")
    token = csrf_token(client, "/admin/users")
    response = client.post(f"/admin/users/{target.id}/active", data={
        "csrf_token": token, "active": "0"}, follow_redirects=True)
    assert "deactivated" in response.get_data(as_text=True)
    own = client.post(f"/admin/users/{admin.id}/active", data={"csrf_token": token,
                                                               "active": "0"})
    assert own.status_code == 422
    assert "cannot deactivate your own account" in own.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, target.id).active is False  # type: ignore[union-attr]
        assert db.session.get(User, admin.id).active is True  # type: ignore[union-attr]
    missing = client.post("/admin/users/999999/active", data={"csrf_token": token})
    assert missing.status_code == 404


def test_admin_sees_no_clinical_records(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "admin")
    page = client.get("/dashboard").get_data(as_text=True)
    assert "Administration" in page
    assert "My cases" not in page and "Work queue" not in page and "Quality overview" not in page


def test_each_role_sees_its_dashboard(app: Flask, accounts: Accounts) -> None:
    expected = {"clinician": "My cases", "engineer": "Work queue",
                "quality": "Quality overview", "admin": "Administration"}
    for role, heading in expected.items():
        client = app.test_client()
        accounts.login(client, role)
        page = client.get("/").get_data(as_text=True)
        assert heading in page, role
        assert [h for h in expected.values() if h in page] == [heading], role


def test_configuration_page_hides_the_secret(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "admin")
    page = client.get("/admin/configuration").get_data(as_text=True)
    assert "PDM_SECRET_KEY" in page and "(hidden)" in page
    assert app.config["SECRET_KEY"] not in page


def test_tokens_page_creates_and_revokes(app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "engineer")
    empty = client.post("/account/tokens", data={
        "csrf_token": csrf_token(client, "/account/tokens"), "name": "   "})
    assert empty.status_code == 422
    assert 'id="name-error"' in empty.get_data(as_text=True)
    created = client.post("/account/tokens", data={
        "csrf_token": csrf_token(client, "/account/tokens"), "name": "workstation"})
    page = created.get_data(as_text=True)
    assert "Copy your new token now" in page
    secret = page.split("<pre><code>")[1].split("</code>")[0]
    assert app.test_client().get("/api/v1/me", headers={
        "Authorization": f"Bearer {secret}"}).status_code == 200
