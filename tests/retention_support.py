"""Helpers for retention tests: policies written to files, cases driven through the workflow."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import Case, CaseStatus
from tests.conftest import PASSWORD, Accounts
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create

SECONDS_POLICY = """
version: 1
regimes:
  - name: test-seconds
    title: Test policy (seconds)
    source: tests only
    clock: [signed, released, delivered]
    periods: {{implantable: {implantable} seconds, other: {other} seconds}}
"""

DELIVERY_POLICY = """
version: 1
regimes:
  - name: imdrf
    title: IMDRF N58
    clock: [signed, released, delivered]
    periods: {implantable: 15 years, other: 5 years}
  - name: after-delivery
    title: Twenty years after delivery
    clock: delivered
    periods: {implantable: 20 years, other: 20 years}
"""


def write_policy(directory: Path, text: str, name: str = "policy.yaml") -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


def seconds_policy(directory: Path, seconds: int) -> str:
    return write_policy(directory, SECONDS_POLICY.format(implantable=seconds, other=seconds),
                        "seconds.yaml")


DISPOSABLE_WITHIN_S = 30.0


def wait_until_disposable(app: Flask, case_id: int, bound_s: float = DISPOSABLE_WITHIN_S) -> None:
    """Poll (bounded) until the case's retention has passed and disposal would be allowed;
    fail naming the refusal when it is not within ``bound_s``."""
    from pdm_records.services.retention import disposal_refusal

    start = time.monotonic()
    while True:
        with app.app_context():
            case = db.session.get(Case, case_id)
            assert case is not None
            refusal = disposal_refusal(db.session, case, datetime.now(UTC))
        if refusal is None:
            return
        assert time.monotonic() - start < bound_s, refusal
        time.sleep(0.2)


def signed_case(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                files: int = 2) -> dict[str, Any]:
    """A submitted (signed) implant case with ``files`` attachments; tokens per role, and the
    ``accounts`` that hold them (for the authenticator codes of enrolled signers)."""
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    for n in range(files):
        assert attach(app, clinician, case["id"], binary_stl(scale=10.0 + n),
                      f"plan-{n}.stl").status_code == 201
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(clinician))
    assert response.status_code == 200, response.get_json()
    return {"id": case["id"], "clinician": clinician, "engineer": accounts.token("engineer"),
            "quality": accounts.token("quality"), "accounts": accounts}


def step(app: Flask, token: str, case_id: int, **body: Any) -> Any:
    return app.test_client().post(f"/api/v1/cases/{case_id}/transitions", json=body,
                                  headers=bearer(token))


def release(app: Flask, case: dict[str, Any]) -> None:
    """Approve (clinician signature) and release (quality signature, with the authenticator code
    of the enrolled quality user) a signed case. The fixtures' engineer becomes the assigned
    engineer, as if they had accepted the case (engineers see only their own cases)."""
    accounts: Accounts = case["accounts"]
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None
        row.status = CaseStatus.AWAITING_APPROVAL  # design verification is tested elsewhere
        row.assigned_engineer_id = accounts.user("engineer").id
        db.session.commit()
    assert step(app, case["clinician"], case["id"], to="approved",
                password=PASSWORD).status_code == 200
    response = step(app, case["quality"], case["id"], to="released", password=PASSWORD,
                    totp_code=accounts.totp("quality"))
    assert response.status_code == 200, response.get_json()


def deliver(app: Flask, case: dict[str, Any], on: date | None = None) -> None:
    response = step(app, case["engineer"], case["id"], to="delivered",
                    delivered_on=(on or date.today()).isoformat())
    assert response.status_code == 200, response.get_json()
