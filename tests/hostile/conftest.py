"""One application per test module for the hostile-input campaign.

Hundreds of cases each building a fresh application, catalogue and signed-in accounts would take
far too long (argon2 hashing alone); instead each module gets one world — application, database,
store, accounts, tokens, signed-in browsers — and every case builds the records it attacks (a
fresh draft, a fresh envelope, …) and compares row and object counts around its own request.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from pdm_records import create_app
from pdm_records.extensions import db, limiter
from tests.conftest import (
    PASSWORD,
    Accounts,
    _base_config,
    csrf_token,
    fresh_database,
    load_catalogue,
    object_count,
    table_counts,
)
from tests.meshes import binary_stl
from tests.requests_support import ADAPTABLE, CUSTOM_MADE, PATIENT_MATCHED, bearer, common
from tests.retention_support import seconds_policy, wait_until_disposable

CLIN, ENG, QUAL, ADMIN = "clinician", "engineer", "quality", "admin"
QUAL2 = "quality-2"  # a second quality user: envelopes are approved by another than the author
SECOND_QUALITY = "quality-2@example.org"

# Small limits, so that "too large" is cheap to send (STYLE §5: uploads are hostile).
HOSTILE_CONFIG: dict[str, Any] = {
    "PDM_MAX_UPLOAD_MB": 1,
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "PDM_ZIP_MAX_DECOMPRESSED_MB": 4,
    "PDM_ZIP_MAX_RATIO": 50,
    "PDM_PAGE_SIZE": 1000,  # every account on the first page of the accounts list
    # Signing forms (legal holds, disposal, second-factor resets) are sent many times a minute
    # here. Each accepted authenticator code uses up its 30-second step (replay protection), so
    # codes are accepted up to an hour ahead, and the per-account signing rate limit is lifted;
    # the window, the replay rule and the rate limit themselves are tested in
    # tests/functional/test_mfa.py and test_signing_failures.py.
    "SECURITY_TWO_FACTOR_AUTHENTICATOR_VALIDITY": 3600,
    "PDM_SIGNING_RATE_LIMIT": "10000 per minute",
}
# Records may be disposed of one second after signing (a policy file written per world), so
# the disposal form can be sent with every hostile reason and succeed where it should.
DISPOSABLE_AFTER_S = 1
ENVELOPE = {"max_faces": 100000, "min_faces": 4}


class World:
    """The application and helpers that build the records a hostile case attacks."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.accounts = Accounts(app)
        self.catalogue = load_catalogue(app)
        self.tokens = {role: self.accounts.token(role) for role in (CLIN, ENG, QUAL, ADMIN)}
        self.tokens[QUAL2] = self.accounts.token(QUAL, email=SECOND_QUALITY)
        self._clients: dict[str, FlaskClient] = {}
        self._csrf: dict[str, str] = {}

    def fresh_code(self, who: str) -> str:
        """A TOTP code the product has not accepted yet for ``who`` (an e-mail, or a role's
        account; replay protection refuses a used step): the current step, or the one after the
        last step it accepted."""
        from pdm_records.extensions import db
        from pdm_records.models import User
        from tests.totp import current_counter, totp_at

        account = (self.accounts.user(QUAL, email=who) if "@" in who
                   else self.accounts.user(who))
        email = account.email
        assert account.totp_key, f"{email} is not enrolled"
        with self.app.app_context():
            user = db.session.scalars(sa.select(User).where(User.email == email)).one()
            step = max(current_counter(), (user.tf_totp_last_counter or 0) + 1)
        return totp_at(account.totp_key, step)

    # -- clients --------------------------------------------------------------------------
    def api(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role])

    def web(self, role: str) -> FlaskClient:
        """A browser signed in as ``role`` (one per role for the whole module)."""
        if role not in self._clients:
            client = self.app.test_client()
            self.accounts.login(client, role)
            self._clients[role] = client
            self._csrf[role] = csrf_token(client, "/account/tokens")
        return self._clients[role]

    def csrf(self, role: str) -> str:
        self.web(role)
        return self._csrf[role]

    def counts(self) -> tuple[dict[str, int], int]:
        return table_counts(self.app), object_count(self.app)

    # -- records to attack -----------------------------------------------------------------
    def call(self, method: str, url: str, role: str, **kwargs: Any) -> Any:
        response = self.app.test_client().open(url, method=method, headers=self.api(role),
                                               **kwargs)
        assert response.status_code < 300, (url, response.status_code, response.get_data()[:300])
        return response.get_json(silent=True)

    def draft_case(self, device: str = "implant") -> int:
        extra = {"implant": PATIENT_MATCHED, "custom": CUSTOM_MADE,
                 "adaptable": ADAPTABLE}[device]
        body = self.call("POST", "/api/v1/cases", CLIN,
                         json={**common(self.catalogue, device), **extra})
        return int(body["id"])

    def submitted_case(self, device: str = "implant") -> int:
        case_id = self.draft_case(device)
        self.call("POST", f"/api/v1/cases/{case_id}/submit", CLIN, json={"password": PASSWORD})
        return case_id

    def accepted_case(self, device: str = "implant") -> int:
        case_id = self.submitted_case(device)
        self.call("POST", f"/api/v1/cases/{case_id}/transitions", ENG, json={"to": "accepted"})
        return case_id

    def designed_case(self, device: str = "custom") -> int:
        """A case in design with one iteration (custom-made: characteristics to confirm)."""
        case_id = self.accepted_case(device)
        self.call("POST", f"/api/v1/cases/{case_id}/iterations", ENG,
                  data={"file": (io.BytesIO(binary_stl()), "design.stl"), "units": "mm"},
                  content_type="multipart/form-data")
        return case_id

    def confirmation_item(self, case_id: int) -> str:
        view = self.call("GET", f"/api/v1/cases/{case_id}", ENG)
        return str(view["characteristic_confirmations"]["items"][0]["item"])

    def draft_envelope(self) -> int:
        body = self.call("POST", "/api/v1/envelopes", QUAL, json={
            "device_type_id": self.catalogue["guide"], "definition": ENVELOPE})
        return int(body["id"])

    def held_case(self) -> tuple[int, int]:
        """A signed case under one legal hold (placed by quality through the form): ids."""
        from pdm_records.models import LegalHold

        case_id = self.submitted_case()
        response = self.web(QUAL).post(f"/retention/cases/{case_id}/holds", data={
            "reason": "court order 2026/117", "password": PASSWORD,
            "totp_code": self.fresh_code(QUAL), "csrf_token": self.csrf(QUAL)})
        assert response.status_code == 302, response.get_data(as_text=True)[:300]
        with self.app.app_context():
            hold_id = db.session.scalars(sa.select(LegalHold.id).where(
                LegalHold.case_id == case_id)).one()
        return case_id, hold_id

    def disposable_case(self) -> int:
        """A signed case (no files) whose retention period has passed."""
        case_id = self.submitted_case()
        wait_until_disposable(self.app, case_id)
        return case_id

    def case_view(self, case_id: int, role: str = CLIN) -> dict[str, Any]:
        return dict(self.call("GET", f"/api/v1/cases/{case_id}", role))

    def page(self, role: str, url: str) -> str:
        response = self.web(role).get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response.get_data(as_text=True)


@pytest.fixture(scope="module")
def world(database_template: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp: Path = tmp_path_factory.mktemp("hostile")
    url = fresh_database(database_template, tmp)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PDM_INSTANCE_PATH", str(tmp / "instance"))
        config = _base_config(url, tmp)
        config.update(HOSTILE_CONFIG)
        config["PDM_RETENTION_POLICY"] = seconds_policy(tmp, DISPOSABLE_AFTER_S)
        app = create_app(config)
        with app.app_context():
            limiter.reset()
        yield World(app)
        with app.app_context():
            db.engine.dispose()


STACK_TRACE = re.compile(r"Traceback \(most recent call last\)|File \"/|site-packages|"
                         r"\.py\", line \d+|sqlalchemy\.exc|psycopg\.|werkzeug\.exceptions")


def assert_no_internals(text: str) -> None:
    """No stack trace, source path or driver error leaks into a response."""
    match = STACK_TRACE.search(text)
    assert match is None, f"internal detail in the response: {text[match.start():][:300]}"


def rows_of(app: Flask, model: Any, **where: Any) -> int:
    with app.app_context():
        query = sa.select(sa.func.count()).select_from(model)
        for key, value in where.items():
            query = query.where(getattr(model, key) == value)
        return int(db.session.scalar(query) or 0)
