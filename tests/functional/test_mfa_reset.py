"""An administrator resets a user's lost second factor; the operator can too (``pdm reset-mfa``).

Through the real forms: the administrator re-authenticates with password and authenticator code
(as for signing), the user's sessions end, and their next sign-in takes them through enrolment
again. Refusals change nothing; wrong credentials are recorded like failed signatures.
(docs/security/authentication.md, *Lost authenticator*; NIST SP 800-63B §6.1.2.3.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.extensions import db
from pdm_records.models import ApiToken, AuditEvent, User
from tests.conftest import PASSWORD, Account, Accounts, csrf_token
from tests.totp import current_counter, totp_at

SECOND_ADMIN = "second-admin@example.org"


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.query(AuditEvent).filter_by(action=action)
                    .order_by(AuditEvent.id))


def _user(app: Flask, user_id: int) -> User:
    with app.app_context():
        user = db.session.get(User, user_id)
        assert user is not None
        db.session.expunge(user)
        return user


def _password_step(client: FlaskClient, email: str) -> Any:
    return client.post("/login", data={"email": email, "password": PASSWORD,
                                       "csrf_token": csrf_token(client, "/login")})


def _flashes(client: FlaskClient, kind: str) -> list[str]:
    page = client.get("/admin/users").get_data(as_text=True)
    return re.findall(rf'<div class="flash flash-{kind}"[^>]*>(.*?)</div>', page, re.S)


def _reset(client: FlaskClient, accounts: Accounts, admin: Account, target_id: int, *,
           reason: str = "Phone replaced; ticket 4711", password: str = PASSWORD,
           code: str | None = None) -> Any:
    return client.post(f"/admin/users/{target_id}/reset-mfa", data={
        "reason": reason, "password": password,
        "totp_code": code if code is not None else accounts.code(admin),
        "csrf_token": csrf_token(client, "/admin/users")})


def _generate_recovery_codes(client: FlaskClient) -> list[str]:
    page = client.post("/mf-recovery-codes", data={
        "generate_new_codes": "1", "csrf_token": csrf_token(client, "/mf-recovery-codes")})
    return re.findall(r"<li><code>([^<]+)</code></li>", page.get_data(as_text=True))


def test_an_administrator_resets_a_lost_second_factor_and_the_user_enrols_again(
        app: Flask, accounts: Accounts, tmp_path: Path) -> None:
    from pdm_records.security.events import configure_security_log

    quality = accounts.user("quality")
    assert quality.totp_key
    user_browser = app.test_client()
    accounts.login(user_browser, "quality")
    recovery_codes = _generate_recovery_codes(user_browser)
    assert len(recovery_codes) == 10
    token = accounts.token("quality")
    before = _user(app, quality.id)
    assert before.tf_totp_secret and before.tf_totp_last_counter and before.mf_recovery_codes

    admin_browser = app.test_client()
    admin = accounts.login(admin_browser, "admin")
    listing = admin_browser.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{quality.id}/reset-mfa"' in listing
    assert f'action="/admin/users/{admin.id}/reset-mfa"' not in listing  # never one's own
    log_file = tmp_path / "security.log"
    configure_security_log(str(log_file))
    try:
        response = _reset(admin_browser, accounts, admin, quality.id)
    finally:
        configure_security_log("off")
    assert response.status_code == 302 and response.headers["Location"].endswith("/admin/users")
    [message] = _flashes(admin_browser, "success")
    assert quality.email in message and "10 recovery code(s) removed" in message

    after = _user(app, quality.id)
    assert (after.tf_primary_method, after.tf_totp_secret, after.tf_totp_last_counter,
            after.tf_phone_number) == (None, None, None, None)
    assert not after.mf_recovery_codes  # the column type reads "none" back as an empty list
    assert after.fs_uniquifier != before.fs_uniquifier
    assert after.password == before.password and after.active

    [event] = _events(app, "mfa.reset")
    assert event.actor_id == admin.id and event.target_id == str(quality.id)
    assert event.before == {"email": quality.email, "enrolled": True,
                            "method": "authenticator", "recovery_codes": 10}
    assert event.after == {"email": quality.email, "enrolled": False, "method": None,
                           "recovery_codes": 0, "sessions_ended": True,
                           "reason": "Phone replaced; ticket 4711"}
    recorded = json.dumps([event.before, event.after]) + log_file.read_text()
    for secret in (before.tf_totp_secret, quality.totp_key, PASSWORD,
                   *recovery_codes, *(before.mf_recovery_codes or [])):
        assert secret not in recorded
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert any(e["event"] == "mfa.reset" and e["outcome"] == "success"
               and e["user_id"] == quality.id and e["by"] == admin.id for e in lines), lines

    # The user's session ended with the reset; the administrator's did not.
    ended = user_browser.get("/dashboard")
    assert ended.status_code == 302 and "/login" in ended.headers["Location"]
    assert admin_browser.get("/admin/users").status_code == 200
    # The API token is kept, but a mandatory role's token works only once enrolled again.
    with app.app_context():
        assert db.session.query(ApiToken).filter_by(user_id=quality.id,
                                                    revoked_at=None).count() == 1
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401

    # Next sign-in: password, then enrolment of a new authenticator before anything else.
    client = app.test_client()
    first = _password_step(client, quality.email)
    assert first.status_code == 302 and first.headers["Location"].endswith("/tf-setup")
    assert client.get("/dashboard").status_code == 302
    page = client.post("/tf-setup", data={"setup": "authenticator", "csrf_token": csrf_token(
        client, "/tf-setup")}).get_data(as_text=True)
    match = re.search(r"Key: <code>([A-Z2-7 -]+)</code>", page)
    assert match, page[:2000]
    new_key = match.group(1)
    assert new_key.replace(" ", "").replace("-", "") != quality.totp_key.replace(
        " ", "").replace("-", "")
    old_code = totp_at(quality.totp_key, current_counter())
    assert old_code != totp_at(new_key, current_counter())
    refused = client.post("/tf-validate", data={"code": old_code,
                                                "csrf_token": csrf_token(client, "/tf-setup")})
    assert client.get("/dashboard").status_code == 302, refused.status_code  # the lost key
    page = client.post("/tf-setup", data={"setup": "authenticator", "csrf_token": csrf_token(
        client, "/tf-setup")}).get_data(as_text=True)
    match = re.search(r"Key: <code>([A-Z2-7 -]+)</code>", page)
    assert match
    done = client.post("/tf-validate", data={"code": totp_at(match.group(1), current_counter()),
                                             "csrf_token": csrf_token(client, "/tf-setup")})
    assert done.status_code == 302 and client.get("/dashboard").status_code == 200
    assert _user(app, quality.id).tf_primary_method == "authenticator"
    assert app.test_client().get("/api/v1/me", headers={
        "Authorization": f"Bearer {token}"}).status_code == 200


def test_an_administrator_cannot_reset_their_own_second_factor(
        app: Flask, accounts: Accounts, tmp_path: Path) -> None:
    from pdm_records.security.events import configure_security_log

    admin = accounts.user("admin")
    browser = app.test_client()
    accounts.login(browser, "admin")
    before = _user(app, admin.id)
    log_file = tmp_path / "security.log"
    configure_security_log(str(log_file))
    try:
        response = _reset(browser, accounts, admin, admin.id)
    finally:
        configure_security_log("off")
    assert response.status_code == 302
    [logged] = [e for e in map(json.loads, log_file.read_text().splitlines())
                if e["event"] == "mfa.reset"]
    assert logged["outcome"] == "failure" and logged["by"] == admin.id
    assert "your own" in logged["refused"]
    [message] = _flashes(browser, "error")
    assert "cannot reset your own second factor" in message and "Account:" in message
    assert "Another administrator must" in message
    after = _user(app, admin.id)
    assert after.tf_totp_secret == before.tf_totp_secret and after.tf_primary_method
    # Refused before any credential was checked: the code was not used, nothing recorded.
    assert after.tf_totp_last_counter == before.tf_totp_last_counter
    assert _events(app, "mfa.reset") == [] and _events(app, "auth.failed") == []
    assert browser.get("/dashboard").status_code == 200  # still signed in

    # A second administrator can do it; the first one then enrols again.
    second = accounts.user("admin", email=SECOND_ADMIN)
    other = app.test_client()
    _login_as(other, accounts, second)
    assert _reset(other, accounts, second, admin.id).status_code == 302
    assert _user(app, admin.id).tf_totp_secret is None
    assert [e.actor_id for e in _events(app, "mfa.reset")] == [second.id]
    assert browser.get("/admin/users").status_code == 302  # the first admin's session ended
    first = _password_step(app.test_client(), admin.email)
    assert first.headers["Location"].endswith("/tf-setup")


def _login_as(client: FlaskClient, accounts: Accounts, account: Account) -> None:
    response = _password_step(client, account.email)
    assert "/tf-validate" in response.headers["Location"]
    response = client.post("/tf-validate", data={
        "code": accounts.code(account), "csrf_token": csrf_token(client, "/tf-validate")})
    assert response.status_code == 302 and "/tf-" not in response.headers["Location"]


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"PDM_SIGNING_RATE_LIMIT": "100 per minute"}


def test_wrong_password_or_code_is_refused_and_recorded_as_a_signing_failure(
        app: Flask, accounts: Accounts) -> None:
    quality = accounts.user("quality")
    browser = app.test_client()
    admin = accounts.login(browser, "admin")
    wrong_password = _reset(browser, accounts, admin, quality.id, password="not my password")
    assert wrong_password.status_code == 302
    [message] = _flashes(browser, "error")
    assert "Your password is not correct" in message and quality.email in message
    assert "Your password: enter your own current password" in message
    now = current_counter()
    assert admin.totp_key
    bad = next(c for c in ("123456", "654321", "000001") if c not in {
        totp_at(admin.totp_key, now + d) for d in range(-4, 5)})
    wrong_code = _reset(browser, accounts, admin, quality.id, code=bad)
    assert wrong_code.status_code == 302
    [message] = _flashes(browser, "error")
    assert "Your authenticator code is not correct" in message
    assert "Your authenticator code: enter the current 6-digit code" in message

    failed = _events(app, "auth.failed")
    assert [(e.target_id, e.after["kind"], e.after["context"]) for e in failed] == [
        (str(admin.id), "password", "signing"), (str(admin.id), "totp", "signing")]
    assert _user(app, admin.id).failed_auth_count == 2  # counts towards the lock-out
    assert _events(app, "mfa.reset") == []
    assert _user(app, quality.id).tf_totp_secret is not None
    # A correct re-authentication resets the count, like a signature.
    assert _reset(browser, accounts, admin, quality.id).status_code == 302
    assert _user(app, admin.id).failed_auth_count == 0
    assert len(_events(app, "mfa.reset")) == 1


def test_failed_reauthentication_is_rate_limited(app: Flask, accounts: Accounts) -> None:
    app.config["PDM_SIGNING_RATE_LIMIT"] = "2 per minute"
    quality = accounts.user("quality")
    browser = app.test_client()
    admin = accounts.login(browser, "admin")
    codes = [_reset(browser, accounts, admin, quality.id, password="nope nope").status_code
             for _ in range(3)]
    assert codes == [302, 302, 429]
    assert len(_events(app, "auth.failed")) == 2  # the third attempt was not even checked


@pytest.mark.parametrize(("reason", "named"), [
    ("", "Say why the second factor is reset"),
    ("   ", "Say why the second factor is reset"),
    ("x" * 2001, "Use at most 2000 characters"),
    ("phone\x00lost", "Reason:"),
])
def test_a_reason_is_required(app: Flask, accounts: Accounts, reason: str, named: str) -> None:
    quality = accounts.user("quality")
    browser = app.test_client()
    admin = accounts.login(browser, "admin")
    counter = _user(app, admin.id).tf_totp_last_counter
    response = _reset(browser, accounts, admin, quality.id, reason=reason)
    assert response.status_code == 302
    [message] = _flashes(browser, "error")
    assert "Reason:" in message and named in message, message
    assert _user(app, quality.id).tf_totp_secret is not None
    assert _events(app, "mfa.reset") == [] and _events(app, "auth.failed") == []
    assert _user(app, admin.id).tf_totp_last_counter == counter  # no credential was checked


def test_an_account_without_a_second_factor_is_refused(app: Flask, accounts: Accounts) -> None:
    engineer = accounts.user("engineer")
    browser = app.test_client()
    admin = accounts.login(browser, "admin")
    uniquifier = _user(app, engineer.id).fs_uniquifier
    assert _reset(browser, accounts, admin, engineer.id).status_code == 302
    [message] = _flashes(browser, "error")
    assert f"{engineer.email} has no second factor to reset" in message
    assert _user(app, engineer.id).fs_uniquifier == uniquifier
    assert _events(app, "mfa.reset") == []
    missing = browser.post("/admin/users/999999/reset-mfa", data={
        "reason": "x", "password": PASSWORD, "totp_code": accounts.code(admin),
        "csrf_token": csrf_token(browser, "/admin/users")})
    assert missing.status_code == 404


@pytest.mark.parametrize("role", ["quality", "clinician", "engineer"])
def test_only_administrators_may_reset(app: Flask, accounts: Accounts, role: str) -> None:
    target = accounts.user("quality", email="target@example.org")
    browser = app.test_client()
    actor = accounts.login(browser, role)
    response = browser.post(f"/admin/users/{target.id}/reset-mfa", data={
        "reason": "phone lost", "password": PASSWORD,
        "totp_code": accounts.code(actor) if actor.totp_key else "",
        "csrf_token": csrf_token(browser, "/account/tokens")})
    assert response.status_code == 403
    assert _user(app, target.id).tf_totp_secret is not None
    assert _events(app, "mfa.reset") == []


# -- the command line ---------------------------------------------------------------------------
def test_the_operator_resets_the_only_administrator(app: Flask, accounts: Accounts) -> None:
    admin = accounts.user("admin")
    browser = app.test_client()
    accounts.login(browser, "admin")
    before = _user(app, admin.id)
    result = app.test_cli_runner().invoke(args=["pdm", "reset-mfa", admin.email.upper(),
                                                "--reason", "only admin lost phone"])
    assert result.exit_code == 0, result.output
    assert f"two-factor sign-in of {admin.email} reset" in result.output
    assert "0 recovery code(s) removed" in result.output
    assert "their role requires two-factor sign-in" in result.output
    after = _user(app, admin.id)
    assert after.tf_totp_secret is None and after.tf_primary_method is None
    assert after.fs_uniquifier != before.fs_uniquifier
    [event] = _events(app, "mfa.reset")
    assert event.actor_id is None and event.actor_label == "system"
    assert event.after["reason"] == "only admin lost phone" and event.before["enrolled"] is True
    assert browser.get("/admin/users").status_code == 302  # the session ended
    assert _password_step(app.test_client(), admin.email).headers["Location"].endswith(
        "/tf-setup")


def test_a_voluntary_enrolment_is_reset_to_password_only_sign_in(
        app: Flask, accounts: Accounts) -> None:
    engineer = accounts.user("engineer", enrol=True)
    result = app.test_cli_runner().invoke(args=["pdm", "reset-mfa", engineer.email,
                                                "--reason", "new phone"])
    assert result.exit_code == 0, result.output
    assert "do not require two-factor sign-in" in result.output
    client = app.test_client()
    assert _password_step(client, engineer.email).status_code == 302
    assert client.get("/dashboard").status_code == 200  # no code asked, no enrolment forced


@pytest.mark.parametrize(("args", "says"), [
    (["nobody@example.org", "--reason", "lost"], "no account 'nobody@example.org'"),
    (["test-engineer@example.org", "--reason", "lost"], "has no second factor to reset"),
    (["test-quality@example.org", "--reason", "  "], "reason: Say why"),
    (["test-quality@example.org", "--reason", "a\x1b[31m"], "reason:"),
])
def test_the_command_refuses_with_exit_code_1(app: Flask, accounts: Accounts,
                                              args: list[str], says: str) -> None:
    accounts.user("engineer")
    quality = accounts.user("quality")
    result = app.test_cli_runner().invoke(args=["pdm", "reset-mfa", *args])
    assert result.exit_code == 1, result.output
    assert says in result.output
    assert _events(app, "mfa.reset") == []
    assert _user(app, quality.id).tf_totp_secret is not None


def test_the_command_needs_a_reason_option(app: Flask, accounts: Accounts) -> None:
    quality = accounts.user("quality")
    result = app.test_cli_runner().invoke(args=["pdm", "reset-mfa", quality.email])
    assert result.exit_code == 2 and "--reason" in result.output
    assert _user(app, quality.id).tf_totp_secret is not None
