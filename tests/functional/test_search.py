"""Searching the records (issue #6 §5; DOMAIN.md §1 quality staff "search records", §6 records
readily retrievable, 21 CFR Part 11 §11.10(c)): every filter, totals, pages, sorting, input
validation (400 naming the field) and who may search."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask

from pdm_records.clock import utcnow
from pdm_records.extensions import db
from pdm_records.models import (
    Case,
    CaseStatus,
    DesignIteration,
    EnvelopeStatus,
    EnvelopeVersion,
    FileState,
    Patient,
    RequestRevision,
    RevisionStatus,
    Site,
    SiteKind,
    StoredFile,
    User,
    VerificationReport,
    VerificationResult,
)
from pdm_records.schemas.search import CaseSearchSchema
from pdm_records.services.search import search_cases
from tests.conftest import Accounts
from tests.requests_support import bearer

NOW = utcnow()


def _day(days_ago: int) -> datetime:
    return (NOW - timedelta(days=days_ago)).replace(hour=12, minute=0, second=0, microsecond=0)


# label: (number, patient code, device, prescriber, institution, status, created days ago,
#         released days ago, retain-until in days, verification, hold, envelope version used)
CASES: dict[str, tuple[Any, ...]] = {
    "a": ("PDM-2026-000001", "KX-1001", "implant", "clin1", "h1", "released", 40, 30, 5000,
          "passed", False, "env1"),
    "b": ("PDM-2026-000002", "KX-1002", "implant", "clin1", "h1", "in_design", 20, None, 60,
          "failed", True, "env1"),
    "c": ("PDM-2026-000003", "KY-2001", "guide", "clin2", "h2", "released", 10, 5, 80,
          "passed", False, "env2"),
    "d": ("PDM-2026-000004", "KY-3001", "custom", "clin2", "h2", "submitted", 5, None, 400,
          "none", False, None),
    "e": ("PDM-2025-000005", "LZ-0001", "adaptable", "clin1", "h2", "delivered", 300, 290, 30,
          "passed", True, None),
    "f": ("PDM-2025-000006", "LZ-0002", "guide", "clin2", "h1", "cancelled", 200, None, None,
          "none", False, None),
}


@pytest.fixture
def dataset(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    """Six cases with distinct attributes, written directly (generated data)."""
    clin1 = accounts.user("clinician")
    clin2 = accounts.user("clinician", email="second.clinician@example.org")
    quality = accounts.user("quality")
    engineer = accounts.user("engineer")
    ids: dict[str, Any] = {"clin1": clin1.id, "clin2": clin2.id}
    with app.app_context():
        session = db.session
        other = Site(name="Second Hospital", kind=SiteKind.HEALTH_INSTITUTION)
        session.add(other)
        session.flush()
        ids.update(h1=catalogue["hospital"], h2=other.id)
        envelopes = {}
        for name, device in (("env1", "implant"), ("env2", "guide")):
            version = EnvelopeVersion(device_type_id=catalogue[device], version=1,
                                      status=EnvelopeStatus.APPROVED, definition={},
                                      content_sha256="e" * 64, author_id=quality.id,
                                      approved_at=NOW)
            session.add(version)
            session.flush()
            envelopes[name] = ids[name] = version.id
        for label, (number, code, device, prescriber, site, status, created, released,
                    retain, verification, hold, envelope) in CASES.items():
            patient = Patient(code=code, institution_id=ids[site])
            session.add(patient)
            session.flush()
            case = Case(number=number, status=CaseStatus(status), patient_id=patient.id,
                        device_type_id=catalogue[device], institution_id=ids[site],
                        prescriber_id=ids[prescriber], created_at=_day(created),
                        updated_at=_day(created),
                        released_at=_day(released) if released is not None else None,
                        retain_until=NOW + timedelta(days=retain) if retain else None,
                        verification_result=VerificationResult(verification))
            session.add(case)
            session.flush()
            ids[label] = case.id
            stored = StoredFile(case_id=case.id, backend="local", key=f"records/{label}",
                                sha256="0" * 64, size=1, media_type="model/stl",
                                original_name="design.stl", state=FileState.RECORD,
                                retain_until=NOW + timedelta(days=5000), legal_hold=hold)
            session.add(stored)
            if envelope:
                revision = RequestRevision(case_id=case.id, revision=1,
                                           status=RevisionStatus.SIGNED, content={},
                                           created_by_id=ids[prescriber])
                session.add(revision)
                session.flush()
                iteration = DesignIteration(case_id=case.id, number=1,
                                            based_on_revision_id=revision.id, file_id=stored.id,
                                            created_by_id=engineer.id)
                session.add(iteration)
                session.flush()
                session.add(VerificationReport(
                    case_id=case.id, iteration_id=iteration.id,
                    envelope_version_id=envelopes[envelope], envelope_sha256="e" * 64,
                    mesh_sha256="0" * 64, passed=verification == "passed", report={},
                    report_sha256="1" * 64, record_key=f"records/{label}-report",
                    created_by_id=engineer.id))
        session.commit()
    ids["labels"] = {v: k for k, v in ids.items() if k in CASES}
    ids["quality"] = accounts.token("quality")
    ids["catalogue"] = catalogue
    return ids


def search(app: Flask, token: str, query: Any) -> Any:
    return app.test_client().get("/api/v1/cases/search", query_string=query,
                                 headers=bearer(token))


def found(data: dict[str, Any], response: Any) -> set[str]:
    assert response.status_code == 200, response.get_json()
    return {data["labels"][item["id"]] for item in response.get_json()["items"]}


def _filters(data: dict[str, Any]) -> list[tuple[dict[str, Any], set[str]]]:
    cat = data["catalogue"]
    today = NOW.date()
    return [
        ({}, set(CASES)),
        ({"number": "PDM-2026-000003"}, {"c"}),
        ({"number": "PDM-2025"}, {"e", "f"}),
        ({"number": "pdm-2025-00000"}, {"e", "f"}),
        ({"patient_code": "KX-"}, {"a", "b"}),
        ({"patient_code": "KY"}, {"c", "d"}),
        ({"patient_code": "ky-3"}, {"d"}),  # a lower-case prefix finds upper-case codes
        ({"patient_code": "LZ-0002"}, {"f"}),
        ({"device_type_id": cat["guide"]}, {"c", "f"}),
        ({"category": "patient_matched"}, {"a", "b", "c", "f"}),
        ({"category": "custom_made"}, {"d"}),
        ({"implantable": "true"}, {"a", "b", "d"}),
        ({"implantable": "false"}, {"c", "e", "f"}),
        ({"prescriber_id": data["clin2"]}, {"c", "d", "f"}),
        ({"institution_id": data["h2"]}, {"c", "d", "e"}),
        ({"status": "released"}, {"a", "c"}),
        ({"status": ["released", "delivered"]}, {"a", "c", "e"}),
        ({"created_from": (today - timedelta(days=25)).isoformat()}, {"b", "c", "d"}),
        ({"created_from": (today - timedelta(days=45)).isoformat(),
          "created_to": (today - timedelta(days=20)).isoformat()}, {"a", "b"}),
        ({"released_from": (today - timedelta(days=31)).isoformat()}, {"a", "c"}),
        ({"released_to": (today - timedelta(days=100)).isoformat()}, {"e"}),
        ({"envelope_version_id": data["env1"]}, {"a", "b"}),
        ({"envelope_version_id": data["env2"]}, {"c"}),
        ({"verification": "passed"}, {"a", "c", "e"}),
        ({"verification": "failed"}, {"b"}),
        ({"verification": "none"}, {"d", "f"}),
        ({"on_hold": "true"}, {"b", "e"}),
        ({"on_hold": "false"}, {"a", "c", "d", "f"}),
        ({"expiring_within_days": 90}, {"b", "c", "e"}),
        ({"expiring_within_days": 45}, {"e"}),
        ({"device_type_id": cat["implant"], "verification": "failed"}, {"b"}),
        ({"status": "released", "created_from": (today - timedelta(days=15)).isoformat()},
         {"c"}),
        ({"on_hold": "true", "expiring_within_days": 61, "implantable": "true"}, {"b"}),
    ]


def test_each_filter_finds_exactly_its_cases_with_the_total(
        app: Flask, dataset: dict[str, Any]) -> None:
    for query, expected in _filters(dataset):
        response = search(app, dataset["quality"], query)
        assert found(dataset, response) == expected, query
        assert response.get_json()["total"] == len(expected), query


def test_pages_and_totals(app: Flask, dataset: dict[str, Any]) -> None:
    pages = []
    for page in (1, 2, 3):
        body = search(app, dataset["quality"], {"per_page": 2, "page": page,
                                                "sort": "number"}).get_json()
        assert body["total"] == 6 and body["pages"] == 3 and body["page"] == page
        pages.append([dataset["labels"][i["id"]] for i in body["items"]])
    assert pages == [["e", "f"], ["a", "b"], ["c", "d"]]
    beyond = search(app, dataset["quality"], {"per_page": 2, "page": 4}).get_json()
    assert beyond["items"] == [] and beyond["total"] == 6


SORTS = [
    ("number", ["e", "f", "a", "b", "c", "d"]),
    ("-number", ["d", "c", "b", "a", "f", "e"]),
    ("-created_at", ["d", "c", "b", "a", "f", "e"]),
    ("created_at", ["e", "f", "a", "b", "c", "d"]),
    ("released_at", ["e", "a", "c", "b", "d", "f"]),  # never released: last
    ("-retain_until", ["a", "d", "c", "b", "e", "f"]),  # no retain-until: last
    ("patient_code", ["a", "b", "c", "d", "e", "f"]),
    ("-patient_code", ["f", "e", "d", "c", "b", "a"]),
    ("status", ["f", "e", "b", "a", "c", "d"]),
]


def test_sorting_by_whitelisted_keys(app: Flask, dataset: dict[str, Any]) -> None:
    for sort, expected in SORTS:
        body = search(app, dataset["quality"], {"sort": sort}).get_json()
        assert [dataset["labels"][i["id"]] for i in body["items"]] == expected, sort


INVALID = [
    ({"sort": "id"}, "sort"),
    ({"sort": "prescriber.password"}, "sort"),
    ({"status": "archived"}, "status"),
    ({"category": "bespoke"}, "category"),
    ({"device_type_id": "abc"}, "device_type_id"),
    ({"device_type_id": "0"}, "device_type_id"),
    ({"patient_code": "KX%"}, "patient_code"),
    ({"number": "PDM_2026"}, "number"),
    ({"created_from": "2026-13-01"}, "created_from"),
    ({"created_from": "2026-05-02", "created_to": "2026-05-01"}, "created_to"),
    ({"released_from": "2026-05-02", "released_to": "2026-05-01"}, "released_to"),
    ({"verification": "maybe"}, "verification"),
    ({"on_hold": "perhaps"}, "on_hold"),
    ({"expiring_within_days": "-1"}, "expiring_within_days"),
    ({"per_page": "1000"}, "per_page"),
    ({"page": "0"}, "page"),
]


def test_an_invalid_filter_is_400_naming_the_field(
        app: Flask, dataset: dict[str, Any]) -> None:
    for query, field in INVALID:
        response = search(app, dataset["quality"], query)
        assert response.status_code == 400, query
        body = response.get_json()
        assert body["error"] == "bad_request", body
        assert field in {k.split(".")[0] for k in body["field_errors"]}, (query, body)


def test_only_quality_searches(app: Flask, accounts: Accounts, dataset: dict[str, Any]) -> None:
    for role in ("clinician", "engineer", "admin"):
        response = search(app, accounts.token(role), {})
        assert response.status_code == 403, role
        browser = app.test_client()
        accounts.login(browser, role)
        assert browser.get("/cases/search").status_code == 403, role
    assert app.test_client().get("/api/v1/cases/search").status_code == 401


def test_the_service_searches_only_what_the_actor_may_see(
        app: Flask, dataset: dict[str, Any]) -> None:
    filters = CaseSearchSchema().load({})
    with app.app_context():
        clinician = db.session.get(User, dataset["clin2"])
        assert clinician is not None
        result = search_cases(db.session, clinician, filters)
        assert {dataset["labels"][h.id] for h in result.items} == {"c", "d", "f"}
        assert result.total == 3


def test_the_search_page(app: Flask, accounts: Accounts, dataset: dict[str, Any]) -> None:
    browser = app.test_client()
    accounts.login(browser, "quality")
    page = browser.get("/cases/search?status=released&sort=number&per_page=1")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "2 cases found · page 1 of 2" in html
    assert 'href="/cases/PDM-2026-000001/dossier"' in html
    assert "PDM-2026-000003" not in html  # on page 2
    # Pagination and sort links keep the filters.
    assert "page=2" in html and "status=released" in html and "sort=-number" in html
    second = browser.get("/cases/search?status=released&sort=number&per_page=1&page=2")
    assert "PDM-2026-000003" in second.get_data(as_text=True)
    held = browser.get("/cases/search?on_hold=true&sort=number").get_data(as_text=True)
    assert held.count("on hold</td>") == 2
    bad = browser.get("/cases/search?created_from=2026-05-02&created_to=2026-05-01")
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert 'id="created_to-error"' in text and "The end of the range is before its start" in text
    assert 'value="2026-05-02"' in text  # the entered values are kept
    unknown_sort = browser.get("/cases/search?sort=password")
    assert unknown_sort.status_code == 400
    assert 'id="sort-error"' in unknown_sort.get_data(as_text=True)


def test_the_search_is_in_the_openapi_document(app: Flask) -> None:
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/cases/search"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"patient_code", "status", "expiring_within_days", "on_hold", "verification",
            "envelope_version_id", "sort", "page", "per_page"} <= names
    assert "400" in operation["responses"]
