"""Custom-made and adaptable devices: before a design is signed *verified*, the engineer confirms
item by item that it meets each characteristic the prescriber stated (EU MDR 2017/745 Annex XIII
§1; MDCG 2021-3 Q6–Q7; DOMAIN.md §2–§4). Patient-matched devices keep envelope verification."""

from __future__ import annotations

import io
from typing import Any

from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import AuditEvent, Case, CharacteristicConfirmation, Signature
from pdm_records.services.case_views import signature_status
from tests.conftest import PASSWORD, Accounts, csrf_token, table_counts
from tests.functional.test_envelopes_verification import (
    HOLLOW_LIMITS,
    _case_in_design,
    _envelope,
    _hollow_box,
    verify,
)
from tests.meshes import binary_stl
from tests.requests_support import ADAPTABLE, CUSTOM_MADE, attach, bearer, common, create

# Manufacturing limits (printability) only: custom-made parameters are prescribed, not ranged.
PRINTABILITY = {k: v for k, v in HOLLOW_LIMITS.items() if k != "parameters"}
CUSTOM_ITEMS = ["design_parameters.plate_thickness", "design_parameters.screw_count",
                "material", "fixation"]


def _case(app: Flask, accounts: Accounts, catalogue: dict[str, int], device: str,
          payload: dict[str, Any]) -> dict[str, Any]:
    """A case of ``device`` in design with one passing design iteration."""
    _envelope(app, accounts, catalogue[device], PRINTABILITY)
    clinician, engineer = accounts.token("clinician"), accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, device), **payload})
    client = app.test_client()
    attach(app, clinician, case["id"], binary_stl(), "sketch.stl")
    submitted = client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                            headers=bearer(clinician))
    assert submitted.status_code == 200, submitted.get_json()
    client.post(f"/api/v1/cases/{case['id']}/transitions", json={"to": "accepted"},
                headers=bearer(engineer))
    info = {"id": case["id"], "clinician": clinician, "engineer": engineer}
    upload(app, info)
    assert verify(app, info)["passed"] is True
    return info


def upload(app: Flask, case: dict[str, Any]) -> None:
    response = app.test_client().post(
        f"/api/v1/cases/{case['id']}/iterations", headers=bearer(case["engineer"]),
        data={"file": (io.BytesIO(_hollow_box()), "design.stl"), "units": "mm"},
        content_type="multipart/form-data")
    assert response.status_code == 201, response.get_json()


def sign_verified(app: Flask, case: dict[str, Any]) -> Any:
    return app.test_client().post(f"/api/v1/cases/{case['id']}/transitions",
                                  headers=bearer(case["engineer"]),
                                  json={"to": "verified", "password": PASSWORD})


def confirm(app: Flask, case: dict[str, Any], items: list[dict[str, Any]], number: int = 1,
            token: str | None = None) -> Any:
    return app.test_client().post(
        f"/api/v1/cases/{case['id']}/iterations/{number}/confirmations",
        headers=bearer(token or case["engineer"]), json={"items": items})


def test_verified_is_refused_until_each_characteristic_is_confirmed(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = _case(app, accounts, catalogue, "custom", CUSTOM_MADE)
    refused = sign_verified(app, case)
    assert refused.status_code == 409
    message = refused.get_json()["message"]
    assert "Not confirmed yet: plate thickness, screw count, Material, Fixation." in message
    detail = app.test_client().get(f"/api/v1/cases/{case['id']}",
                                   headers=bearer(case["engineer"])).get_json()
    listed = detail["characteristic_confirmations"]
    assert [i["item"] for i in listed["items"]] == CUSTOM_ITEMS
    assert listed["items"][0]["prescribed_text"] == "2 mm" and listed["complete"] is False
    assert "verified" not in [a["to"] for a in detail["allowed_actions"]]

    # In the browser: the case page lists each item; the engineer ticks two.
    browser = app.test_client()
    accounts.login(browser, "engineer")
    page = browser.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "item-by-item confirmation" in page and 'name="met:material"' in page
    assert "Ti-6Al-4V" in page and "Sign as verified" not in page
    ticked = browser.post(f"/cases/{case['id']}/iterations/1/confirmations", data={
        "csrf_token": csrf_token(browser, f"/cases/{case['id']}"),
        "met:design_parameters.plate_thickness": "yes", "met:material": "yes",
        "note:material": "mill certificate 4711 checked", "note:fixation": "ignored: unticked"},
        follow_redirects=True)
    assert "2 characteristics confirmed for design iteration #1." in ticked.get_data(
        as_text=True)
    still = sign_verified(app, case)
    assert still.status_code == 409
    assert "Not confirmed yet: screw count, Fixation." in still.get_json()["message"]
    assert confirm(app, case, [
        {"item": "design_parameters.screw_count", "met": True},
        {"item": "fixation", "met": True, "note": "6 screw holes at the planned positions"},
    ]).status_code == 201
    page = browser.get(f"/cases/{case['id']}").get_data(as_text=True)
    assert "mill certificate 4711 checked" in page and "Sign as verified" in page
    verified = sign_verified(app, case)
    assert verified.status_code == 200, verified.get_json()

    with app.app_context():
        rows = db.session.query(CharacteristicConfirmation).filter_by(case_id=case["id"]).all()
        assert sorted(r.item for r in rows) == sorted(CUSTOM_ITEMS)
        assert {r.item: r.note for r in rows}["fixation"].startswith("6 screw holes")
        assert {r.item: r.prescribed for r in rows}["material"] == "Ti-6Al-4V"
        events = db.session.query(AuditEvent).filter_by(
            action="design_iteration.characteristics_confirmed", case_id=case["id"]).all()
        assert len(events) == 2 and events[0].after is not None
        assert [c["item"] for c in events[0].after["confirmations"]] == [
            "design_parameters.plate_thickness", "material"]
        signature = db.session.query(Signature).filter_by(case_id=case["id"],
                                                          meaning="verified").one()
        bound = signature.signed_record["characteristic_confirmations"]
        assert sorted(c["item"] for c in bound) == sorted(CUSTOM_ITEMS)
        assert all(c["met"] is True for c in bound)
        case_row = db.session.get(Case, case["id"])
        assert case_row is not None
        assert signature_status(case_row, signature, db.session) == "valid"
        # Changing a confirmation the signature relies on breaks the signature.
        row = next(r for r in rows if r.item == "material")
        row.note = "nothing was checked"
        db.session.flush()
        assert signature_status(case_row, signature, db.session).startswith("broken")
        db.session.rollback()


def test_a_new_iteration_needs_new_confirmations(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = _case(app, accounts, catalogue, "custom", CUSTOM_MADE)
    assert confirm(app, case, [{"item": i, "met": True} for i in CUSTOM_ITEMS]
                   ).status_code == 201
    upload(app, case)  # iteration 2
    assert verify(app, case, number=2)["passed"] is True
    refused = sign_verified(app, case)
    assert refused.status_code == 409
    assert "plate thickness, screw count, Material, Fixation" in refused.get_json()["message"]
    old = confirm(app, case, [{"item": "material", "met": True}], number=1)
    assert old.status_code == 409 and "latest design iteration (#2)" in old.get_json()["message"]
    assert confirm(app, case, [{"item": i, "met": True} for i in CUSTOM_ITEMS],
                   number=2).status_code == 201
    assert sign_verified(app, case).status_code == 200
    with app.app_context():
        assert db.session.query(CharacteristicConfirmation).filter_by(
            case_id=case["id"]).count() == 8  # the first iteration's stay on record


def test_refusals_name_the_item_and_record_nothing(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = _case(app, accounts, catalogue, "custom", CUSTOM_MADE)
    counts = table_counts(app)
    unknown = confirm(app, case, [{"item": "colour", "met": True},
                                  {"item": "material", "met": True}])
    assert unknown.status_code == 422
    message = unknown.get_json()["field_errors"]["items.0.item"][0]
    assert message.startswith("Not a characteristic prescribed") and "material" in message
    assert "colour" not in unknown.get_data(as_text=True)  # the sent text is not echoed
    not_met = confirm(app, case, [{"item": "material", "met": False}])
    assert not_met.status_code == 422
    assert "upload a corrected design iteration" in not_met.get_json()["field_errors"][
        "items.material"][0]
    assert confirm(app, case, []).status_code == 422
    assert confirm(app, case, [{"item": "material"}]).status_code == 422  # "met" is required
    assert table_counts(app) == counts
    assert confirm(app, case, [{"item": "material", "met": True}]).status_code == 201
    twice = confirm(app, case, [{"item": "material", "met": True}])
    assert twice.status_code == 422 and "already confirmed" in str(twice.get_json())
    # Engineers confirm; the route refuses clinicians and quality.
    assert confirm(app, case, [{"item": "fixation", "met": True}],
                   token=case["clinician"]).status_code == 403
    assert confirm(app, case, [{"item": "fixation", "met": True}],
                   token=accounts.token("quality")).status_code == 403
    browser = app.test_client()
    accounts.login(browser, "engineer")
    empty = browser.post(f"/cases/{case['id']}/iterations/1/confirmations", data={
        "csrf_token": csrf_token(browser, f"/cases/{case['id']}")}, follow_redirects=True)
    assert "Tick each characteristic the design meets." in empty.get_data(as_text=True)


def test_adaptable_confirms_the_configuration_and_patient_matched_needs_none(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = _case(app, accounts, catalogue, "adaptable", ADAPTABLE)
    refused = sign_verified(app, case)
    assert refused.status_code == 409 and "Configuration" in refused.get_json()["message"]
    assert confirm(app, case, [{"item": "configuration", "met": True}]).status_code == 201
    assert sign_verified(app, case).status_code == 200

    _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    matched = _case_in_design(app, accounts, catalogue, _hollow_box())
    detail = app.test_client().get(f"/api/v1/cases/{matched['id']}",
                                   headers=bearer(matched["engineer"])).get_json()
    assert detail["characteristic_confirmations"] is None and detail["can_confirm"] is False
    none = confirm(app, matched, [{"item": "wall_thickness", "met": True}])
    assert none.status_code == 409 and "verified against its design envelope" in none.get_json(
        )["message"]
    assert verify(app, matched)["passed"] is True
    assert sign_verified(app, matched).status_code == 200
    with app.app_context():
        signature = db.session.query(Signature).filter_by(case_id=matched["id"],
                                                          meaning="verified").one()
        assert "characteristic_confirmations" not in signature.signed_record
