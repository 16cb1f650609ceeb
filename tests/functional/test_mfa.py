"""Two-factor sign-in, second factor at signing, lock-out, session timeouts, password policy and
security events (DOMAIN.md §8, §9; 21 CFR Part 11 §11.200; NIST SP 800-63B §5.1.1.2, §5.2.2;
RFC 6238). Everything goes through the real forms; codes are computed by the test from the key.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.config import load_settings
from pdm_records.extensions import db
from pdm_records.models import AuditEvent, Signature, User
from pdm_records.passwords import common_passwords, password_problems
from tests.conftest import PASSWORD, Accounts, csrf_token
from tests.functional.test_requests_workflow import force_status, step, submitted  # noqa: F401
from tests.totp import CodeSource, current_counter, totp_at


def _password_step(client: FlaskClient, email: str, password: str = PASSWORD) -> Any:
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": csrf_token(client, "/login")})


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.app_context():
        return list(db.session.query(AuditEvent).filter_by(action=action)
                    .order_by(AuditEvent.id))


def _enrol_in_browser(client: FlaskClient) -> str:
    page = client.post("/tf-setup", data={"setup": "authenticator", "csrf_token": csrf_token(
        client, "/tf-setup")}).get_data(as_text=True)
    match = re.search(r"Key: <code>([A-Z2-7 -]+)</code>", page)
    assert match, page[:2000]
    return match.group(1)


def test_a_mandatory_role_enrols_at_first_sign_in_and_reaches_nothing_before(
        app: Flask, accounts: Accounts) -> None:
    account = accounts.user("quality", enrol=False)
    client = app.test_client()
    first = _password_step(client, account.email)
    assert first.status_code == 302 and first.headers["Location"].endswith("/tf-setup")
    for url in ("/dashboard", "/cases/", "/account/", "/api/v1/me"):
        assert client.get(url).status_code in (302, 401), url  # not signed in yet
    key = _enrol_in_browser(client)
    wrong = client.post("/tf-validate", data={"code": "000000" if totp_at(
        key, current_counter()) != "000000" else "111111",
        "csrf_token": csrf_token(client, "/tf-setup")})
    assert client.get("/dashboard").status_code == 302, wrong.status_code
    key = _enrol_in_browser(client)  # a failed setup starts over with a new secret
    done = client.post("/tf-validate", data={"code": totp_at(key, current_counter()),
                                             "csrf_token": csrf_token(client, "/tf-setup")})
    assert done.status_code == 302
    assert client.get("/dashboard").status_code == 200
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None and user.tf_primary_method == "authenticator"
        assert user.tf_totp_secret and key.replace("-", "") not in user.tf_totp_secret

    # Recovery codes: generated on request, each one signs in once instead of a code.
    page = client.post("/mf-recovery-codes", data={
        "generate_new_codes": "1", "csrf_token": csrf_token(client, "/mf-recovery-codes")})
    codes = re.findall(r"<li><code>([^<]+)</code></li>", page.get_data(as_text=True))
    assert len(codes) == 10
    other = app.test_client()
    assert "/tf-validate" in _password_step(other, account.email).headers["Location"]
    used = other.post("/mf-recovery", data={"code": codes[0],
                                            "csrf_token": csrf_token(other, "/mf-recovery")})
    assert used.status_code == 302 and other.get("/dashboard").status_code == 200
    again = app.test_client()
    _password_step(again, account.email)
    reused = again.post("/mf-recovery", data={"code": codes[0],
                                              "csrf_token": csrf_token(again, "/mf-recovery")})
    assert reused.status_code == 200 and again.get("/dashboard").status_code == 302
    assert _events(app, "auth.failed")[-1].after["kind"] == "recovery_code"


def test_a_signed_in_user_whose_role_becomes_mandatory_must_enrol(
        app: Flask, accounts: Accounts) -> None:
    client = app.test_client()
    accounts.login(client, "clinician")
    assert client.get("/cases/").status_code == 200
    app.config["PDM_MFA_REQUIRED_ROLES"] = "clinician,quality,admin"
    response = client.get("/cases/")
    assert response.status_code == 302 and response.headers["Location"].endswith("/tf-setup")
    assert client.get("/tf-setup").status_code == 200
    key = _enrol_in_browser(client)
    assert key
    token = accounts.token("clinician")
    assert app.test_client().get("/api/v1/me", headers={
        "Authorization": f"Bearer {token}"}).status_code == 401  # not enrolled yet


def test_wrong_and_replayed_codes_are_refused_at_sign_in(app: Flask, accounts: Accounts) -> None:
    account = accounts.user("admin")
    assert account.totp_key
    client = app.test_client()
    _password_step(client, account.email)
    now = current_counter()
    bad = next(c for c in ("123456", "654321", "000001") if c not in {
        totp_at(account.totp_key, now + d) for d in range(-3, 4)})
    refused = client.post("/tf-validate", data={"code": bad,
                                                "csrf_token": csrf_token(client, "/tf-validate")})
    assert refused.status_code == 200 and "The code is not correct." in refused.get_data(
        as_text=True)
    assert client.get("/dashboard").status_code == 302
    code = totp_at(account.totp_key, now)
    assert client.post("/tf-validate", data={"code": code, "csrf_token": csrf_token(
        client, "/tf-validate")}).status_code == 302
    assert client.get("/dashboard").status_code == 200
    replay = app.test_client()
    _password_step(replay, account.email)
    replay.post("/tf-validate", data={"code": code,
                                      "csrf_token": csrf_token(replay, "/tf-validate")})
    assert replay.get("/dashboard").status_code == 302  # the same code never works twice
    failed = _events(app, "auth.failed")
    assert [e.after["kind"] for e in failed] == ["totp", "totp"]
    assert all(e.target_id == str(account.id) for e in failed)


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"PDM_LOCKOUT_THRESHOLD": 4, "PDM_SIGNING_RATE_LIMIT": "100 per minute"}


def test_lock_out_after_failures_and_admin_unlock(app: Flask, accounts: Accounts) -> None:
    account = accounts.user("engineer")
    client = app.test_client()
    for _ in range(4):
        _password_step(client, account.email, "not the password at all")
    locked = _events(app, "auth.locked_out")
    assert len(locked) == 1 and len(_events(app, "auth.failed")) == 4
    # While locked even the right password is not checked; the answer stays generic.
    response = _password_step(client, account.email)
    assert response.status_code == 200
    assert "Invalid e-mail address or password." in response.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302
    assert len(_events(app, "auth.failed")) == 4  # no guess was evaluated
    admin = app.test_client()
    accounts.login(admin, "admin")
    listing = admin.get("/admin/users").get_data(as_text=True)
    assert "locked until" in listing
    unlocked = admin.post(f"/admin/users/{account.id}/unlock",
                          data={"csrf_token": csrf_token(admin, "/admin/users")})
    assert unlocked.status_code == 302 and len(_events(app, "auth.unlocked")) == 1
    assert _password_step(client, account.email).status_code == 302
    assert client.get("/dashboard").status_code == 200


def test_the_lock_ends_by_itself(app: Flask, accounts: Accounts,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    account = accounts.user("clinician")
    client = app.test_client()
    for _ in range(4):
        _password_step(client, account.email, "not the password at all")
    assert _password_step(client, account.email).status_code == 200
    later = datetime.now(UTC) + timedelta(minutes=16)
    monkeypatch.setattr("pdm_records.services.auth.utcnow", lambda: later)
    assert _password_step(client, account.email).status_code == 302


def test_signing_asks_for_the_second_factor(app: Flask, accounts: Accounts,
                                            submitted: dict[str, Any]) -> None:  # noqa: F811
    case_id = submitted["id"]
    force_status(app, case_id, _status("approved"))
    quality = accounts.user("quality")
    browser = app.test_client()
    accounts.login(browser, "quality")
    page = browser.get(f"/cases/{case_id}").get_data(as_text=True)
    assert 'name="totp_code"' in page and "authenticator app" in page
    with app.app_context():
        signatures = db.session.query(Signature).count()
    token = csrf_token(browser, f"/cases/{case_id}")
    no_code = browser.post(f"/cases/{case_id}/transition", data={
        "to": "released", "password": PASSWORD, "csrf_token": token}, follow_redirects=True)
    assert "authenticator code is not correct" in no_code.get_data(as_text=True)
    wrong_code = step(app, submitted["quality"], case_id, to="released", password=PASSWORD,
                      totp_code="12345x")
    assert wrong_code.status_code == 422 and "totp_code" in wrong_code.get_json()["field_errors"]
    with app.app_context():
        assert db.session.query(Signature).count() == signatures
    failed = _events(app, "auth.failed")
    assert [(e.after["kind"], e.after["context"]) for e in failed] == [("totp", "signing")] * 2
    released = browser.post(f"/cases/{case_id}/transition", data={
        "to": "released", "password": PASSWORD, "totp_code": accounts.code(quality),
        "csrf_token": token}, follow_redirects=True)
    assert "is now released" in released.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Signature).count() == signatures + 1


def _status(value: str) -> Any:
    from pdm_records.models import CaseStatus

    return CaseStatus(value)


def test_failed_signing_counts_towards_the_lock_out(app: Flask, accounts: Accounts,
                                                     submitted: dict[str, Any]) -> None:  # noqa: F811
    case_id = submitted["id"]
    force_status(app, case_id, _status("awaiting_approval"))
    for _ in range(4):
        wrong = step(app, submitted["clinician"], case_id, to="approved", password="nope nope")
        assert wrong.status_code == 422
    assert len(_events(app, "auth.locked_out")) == 1
    paused = step(app, submitted["clinician"], case_id, to="approved", password=PASSWORD)
    assert paused.status_code == 422 and "paused" in paused.get_json()["message"]
    client = app.test_client()
    _password_step(client, accounts.user("clinician").email)
    assert client.get("/dashboard").status_code == 302  # and signing in is locked too


def test_failed_signing_is_rate_limited(app: Flask, submitted: dict[str, Any]) -> None:  # noqa: F811
    app.config["PDM_SIGNING_RATE_LIMIT"] = "2 per minute"
    case_id = submitted["id"]
    force_status(app, case_id, _status("awaiting_approval"))
    codes = [step(app, submitted["clinician"], case_id, to="approved",
                  password="nope nope").status_code for _ in range(3)]
    assert codes == [422, 422, 429]
    assert len(_events(app, "auth.failed")) == 2  # the third attempt was not even checked


def test_idle_and_absolute_session_timeouts(app: Flask, accounts: Accounts,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    client = app.test_client()
    accounts.login(client, "engineer")
    start = datetime.now(UTC)

    def at(delta: timedelta) -> None:
        monkeypatch.setattr("pdm_records.security.sessions.utcnow", lambda: start + delta)

    at(timedelta(minutes=29))
    assert client.get("/dashboard").status_code == 200
    at(timedelta(minutes=58))  # 29 minutes after the last request: still active
    assert client.get("/dashboard").status_code == 200
    at(timedelta(minutes=89))  # 31 minutes idle
    idle = client.get("/dashboard")
    assert idle.status_code == 302 and "/login" in idle.headers["Location"]
    assert client.get("/dashboard").status_code == 302

    monkeypatch.undo()
    accounts.login(client, "engineer")
    for minutes in range(25, 12 * 60, 25):  # active all day
        at(timedelta(minutes=minutes))
        assert client.get("/dashboard").status_code == 200, minutes
    at(timedelta(hours=12, minutes=5))
    assert client.get("/dashboard").status_code == 302


def test_password_policy(app: Flask, accounts: Accounts) -> None:
    assert len(common_passwords()) > 40_000
    notice = Path(__file__).resolve().parents[2] / "pdm_records/data/common-passwords.NOTICE"
    assert "MIT" in notice.read_text()
    for weak in ("password1234", "iloveyou1234!", "123456789012", "qwertyuiopas",
                 "passwordpassword", "aaaaaaaaaaaa", "short"):
        assert password_problems(weak), weak
    assert password_problems("jane.doe.2024", "jane.doe@example.org")
    for good in ("correct horse battery staple", "marble kettle orbit 7", "Tr0ub4dor&3-stapler"):
        assert password_problems(good) == [], good
    client = app.test_client()
    accounts.login(client, "clinician")
    response = client.post("/change", data={
        "password": PASSWORD, "new_password": "iloveyou1234!",
        "new_password_confirm": "iloveyou1234!", "csrf_token": csrf_token(client, "/change")})
    assert "too common" in response.get_data(as_text=True)


def test_unknown_mfa_role_is_a_configuration_problem(tmp_path: Path) -> None:
    _, problems = load_settings(tmp_path, environ={"PDM_MFA_REQUIRED_ROLES": "quality,boss",
                                                   "PDM_SECRET_KEY": "k" * 40})
    assert any("PDM_MFA_REQUIRED_ROLES" in p and "boss" in p for p in problems)


def test_security_events_are_json_lines_without_secrets(
        app: Flask, accounts: Accounts, tmp_path: Path, submitted: dict[str, Any]) -> None:  # noqa: F811
    from pdm_records.security.events import configure_security_log, log_export

    log_file = tmp_path / "security.log"
    configure_security_log(str(log_file))
    try:
        quality = accounts.user("quality")
        assert quality.totp_key
        codes = CodeSource(quality.totp_key)
        client = app.test_client()
        _password_step(client, quality.email, "wrong password, twice")
        _password_step(client, "nobody@example.org", "wrong password, twice")
        _password_step(client, quality.email)
        used_code = codes.next()
        accounts._codes[quality.id] = codes
        client.post("/tf-validate", data={"code": used_code,
                                          "csrf_token": csrf_token(client, "/tf-validate")})
        assert client.get("/dashboard").status_code == 200
        assert client.get("/admin/users").status_code == 403
        case_id = submitted["id"]
        force_status(app, case_id, _status("approved"))
        step(app, submitted["quality"], case_id, to="released", password=PASSWORD,
             totp_code="999999")
        with app.test_request_context():
            log_export(actor_id=quality.id, actor_email=quality.email, what="attachment",
                       target_type="attachment", target_id=1, size=10, sha256="ab" * 32)
    finally:
        configure_security_log("off")
    text = log_file.read_text()
    events = [json.loads(line) for line in text.splitlines()]
    names = [e["event"] for e in events]
    for expected in ("signin.failure", "signin.success", "permission.denied",
                     "signing.failure", "export"):
        assert expected in names, names
    assert all({"ts", "event", "outcome"} <= set(e) for e in events)
    success = next(e for e in events if e["event"] == "signin.success")
    assert success["email"] == quality.email and success["outcome"] == "success"
    for secret in (PASSWORD, "wrong password, twice", quality.totp_key,
                   quality.totp_key.replace("-", ""), used_code, "999999", submitted["quality"]):
        assert secret not in text, secret
