"""Two-factor sign-in and signing in a real browser (headless chromium; tests/browser_support).

A quality user (a role that must use two-factor sign-in, DOMAIN.md §8) signs in for the first
time: the password alone leads only to the enrolment page; the key shown there gives codes as an
authenticator app would (RFC 6238, computed by the test); after enrolment the user reaches the
dashboard. On a case page they sign a legal hold: a wrong code is refused with a message and
nothing is signed (21 CFR Part 11 §11.200: both components at signing), the right one signs.
Signed out and back in, the password is followed by the code page.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import BrowserContext, Page

from pdm_records.extensions import db
from pdm_records.models import LegalHold, Signature, User
from tests.browser_support import LOAD_BOUND_MS
from tests.conftest import PASSWORD, Accounts
from tests.retention_support import signed_case
from tests.totp import CodeSource


def _password_step(page: Page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    assert urlparse(page.url).path != "/login", (page.url, _flash(page, "error"))


def _count(app: Flask, model: Any) -> int:
    with app.app_context():
        return int(db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0)


def _flash(page: Page, kind: str) -> str:
    return " ".join(page.locator(f".flash-{kind}").all_text_contents())


def test_enrol_sign_in_and_sign_with_the_second_factor_in_chromium(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], live_server: str,
        browser: BrowserContext) -> None:
    case = signed_case(app, accounts, catalogue, files=0)
    account = accounts.user("quality", email="first.time@example.org", enrol=False)
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    # First sign-in: the password leads to the enrolment page, and nowhere else.
    _password_step(page, live_server, account.email)
    assert page.url.endswith("/tf-setup"), page.url
    assert "Your role requires two-factor sign-in" in page.content()
    page.goto(live_server + "/dashboard")
    assert "/login" in page.url, f"reached {page.url} before enrolling"
    _password_step(page, live_server, account.email)  # wandering off means starting over
    assert page.url.endswith("/tf-setup"), page.url
    page.click("button:has-text('Continue')")  # the authenticator app is the chosen method
    key = page.locator("p:has-text('Key:') code").text_content() or ""
    assert re.fullmatch(r"[A-Z2-7 -]{16,}", key.strip()), key
    assert page.locator("img#qrcode").is_visible()
    codes = CodeSource(key)
    page.fill("#code", codes.next())
    page.click("button:has-text('Confirm and finish')")
    page.wait_for_url(lambda url: "/tf-" not in url, timeout=LOAD_BOUND_MS)
    page.goto(live_server + "/dashboard")
    assert page.url.endswith("/dashboard"), page.url
    with app.app_context():
        user = db.session.get(User, account.id)
        assert user is not None and user.tf_primary_method == "authenticator"

    # Signing a legal hold asks for the password and a code; a wrong code signs nothing.
    signatures = _count(app, Signature)
    page.goto(f"{live_server}/cases/{case['id']}")
    hold_form = page.locator(f"form[action$='/retention/cases/{case['id']}/holds']")
    page.click("summary:has-text('Place a legal hold')")
    assert hold_form.locator("input[name=totp_code]").is_visible()
    hold_form.locator("input[name=reason]").fill("Court order 2026/117")
    hold_form.locator("input[name=password]").fill(PASSWORD)
    hold_form.locator("input[name=totp_code]").fill("000000" if codes.next() != "000000"
                                                    else "111111")
    hold_form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "authenticator code is not correct" in _flash(page, "error"), page.content()[:2000]
    assert _count(app, Signature) == signatures and _count(app, LegalHold) == 0

    page.click("summary:has-text('Place a legal hold')")
    hold_form.locator("input[name=reason]").fill("Court order 2026/117")
    hold_form.locator("input[name=password]").fill(PASSWORD)
    hold_form.locator("input[name=totp_code]").fill(codes.next())
    hold_form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert "Legal hold placed" in _flash(page, "success"), _flash(page, "error")
    assert _count(app, Signature) == signatures + 1 and _count(app, LegalHold) == 1
    assert "Court order 2026/117" in page.locator("#retention").text_content()

    # Signed out and back in: the password, then the code page, then the dashboard.
    browser.clear_cookies()
    _password_step(page, live_server, account.email)
    assert urlparse(page.url).path == "/tf-validate", page.url
    page.fill("#code", codes.next())
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: not urlparse(url).path.startswith("/tf-"),
                      timeout=LOAD_BOUND_MS)
    page.goto(live_server + "/dashboard")
    assert page.url.endswith("/dashboard"), page.url
    assert not problems, problems  # no CSP violation, no script error
