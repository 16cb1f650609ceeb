"""Login attempts are rate-limited per client address (DOMAIN.md §8)."""

from __future__ import annotations

import pytest
from flask import Flask

from tests.conftest import PASSWORD, Accounts, csrf_token


@pytest.fixture
def config_overrides() -> dict[str, object]:
    return {"PDM_LOGIN_RATE_LIMIT": "3 per minute"}


def test_login_attempts_are_rate_limited(app: Flask, accounts: Accounts) -> None:
    user = accounts.user("engineer")
    client = app.test_client()
    token = csrf_token(client, "/login")
    statuses = [client.post("/login", data={"email": user.email, "password": "bad password!",
                                            "csrf_token": token}).status_code
                for _ in range(4)]
    assert statuses[:3] == [200, 200, 200]
    assert statuses[3] == 429
    limited = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                          "csrf_token": token})
    assert limited.status_code == 429
    assert "Too many sign-in attempts" in limited.get_data(as_text=True)
    assert client.get("/login").status_code == 200  # only POST is limited


