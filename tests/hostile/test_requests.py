"""Whole-request hostility on every entry point: malformed JSON, wrong content types, deep
nesting, bad UTF-8, oversized bodies, missing or foreign CSRF tokens, and duplicate submissions.

Every refusal is a 4xx in the product's error shape, changes no row or object, and shows no
stack trace; a duplicate is refused where a rule forbids it (one e-mail per account, one
signature per step, one approval per envelope, one confirmation per characteristic).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pdm_records.models import CaseTransition, CharacteristicConfirmation, Signature, User
from tests.hostile.conftest import ADMIN, CLIN, World, assert_no_internals, rows_of
from tests.hostile.matrix import ENTRY_BY_ID, ENTRY_POINTS
from tests.hostile.runner import send

BIG = 1024 * 1024 + 1


# -- JSON API ------------------------------------------------------------------------------
def _raw(body: bytes, content_type: str) -> dict[str, Any]:
    return {"data": body, "content_type": content_type}


API_BODIES: dict[str, Any] = {
    "malformed_json": lambda valid: _raw(b'{"name": ', "application/json"),
    "json_array": lambda valid: _raw(b"[1, 2, 3]", "application/json"),
    "json_null": lambda valid: _raw(b"null", "application/json"),
    "json_string": lambda valid: _raw(b'"just a string"', "application/json"),
    "deeply_nested_json": lambda valid: _raw(b"[" * 100_000 + b"]" * 100_000,
                                             "application/json"),
    "deeply_nested_object": lambda valid: _raw(b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
                                               "application/json"),
    "invalid_utf8": lambda valid: _raw(b'{"name": "\xff\xfe\xfd"}', "application/json"),
    "utf16_body": lambda valid: _raw(json.dumps(valid).encode("utf-16"), "application/json"),
    "text_plain": lambda valid: _raw(json.dumps(valid).encode(), "text/plain"),
    "xml_body": lambda valid: _raw(b"<?xml version='1.0'?><case/>", "application/xml"),
    "form_encoded": lambda valid: _raw(b"name=x&body=y", "application/x-www-form-urlencoded"),
    "oversized_body": lambda valid: _raw(b'{"a": "' + b"x" * BIG + b'"}', "application/json"),
}
API_JSON = [e.id for e in ENTRY_POINTS if e.id.startswith("api.") and e.body == "json"]
API_CASES = [(e, c) for e in API_JSON for c in API_BODIES]


def _assert_refused(world: World, response: Any, before: Any) -> None:
    text = response.get_data(as_text=True)
    assert_no_internals(text)
    assert 400 <= response.status_code < 500, (response.status_code, text[:300])
    assert world.counts() == before, "a refused request changed rows or objects"


@pytest.mark.parametrize(("entry_id", "body_class"), API_CASES,
                         ids=[f"{e}-request-{c}" for e, c in API_CASES])
def test_api_request(world: World, entry_id: str, body_class: str) -> None:
    entry = ENTRY_BY_ID[entry_id]
    target = entry.prepare(world)
    kwargs = API_BODIES[body_class](target.body)
    before = world.counts()
    response = world.app.test_client().open(target.url, method=entry.method,
                                            headers=world.api(entry.role), **kwargs)
    _assert_refused(world, response, before)
    body = response.get_json()
    assert set(body) == {"error", "message", "field_errors"} and body["message"], body
    expected = {"oversized_body": 413, "deeply_nested_json": 400, "deeply_nested_object": 400,
                "text_plain": 415, "xml_body": 415, "form_encoded": 415}
    if body_class in expected:
        assert response.status_code == expected[body_class], response.status_code
    if body_class == "oversized_body":
        assert "1 MiB" in body["message"]


MULTIPART_API = [e.id for e in ENTRY_POINTS if e.id.startswith("api.") and e.body == "multipart"]


@pytest.mark.parametrize("entry_id", MULTIPART_API, ids=[f"{e}-request-json_instead_of_file"
                                                         for e in MULTIPART_API])
def test_api_upload_without_multipart(world: World, entry_id: str) -> None:
    entry = ENTRY_BY_ID[entry_id]
    target = entry.prepare(world)
    before = world.counts()
    response = world.app.test_client().post(target.url, headers=world.api(entry.role),
                                            json={"file": "AAAA", "units": "mm"})
    _assert_refused(world, response, before)
    assert "file" in response.get_json()["field_errors"]


# -- HTML forms ----------------------------------------------------------------------------
WEB = [e.id for e in ENTRY_POINTS if e.id.startswith("web.")]
FORM_CLASSES = ("no_csrf", "foreign_csrf", "json_body", "oversized_body")
WEB_CASES = [(e, c) for e in WEB for c in FORM_CLASSES]


@pytest.mark.parametrize(("entry_id", "form_class"), WEB_CASES,
                         ids=[f"{e}-request-{c}" for e, c in WEB_CASES])
def test_web_request(world: World, entry_id: str, form_class: str) -> None:
    entry = ENTRY_BY_ID[entry_id]
    target = entry.prepare(world)
    client = world.web(entry.role)
    data = {k: (v() if callable(v) else v) for k, v in target.body.items()}
    before = world.counts()
    if form_class == "no_csrf":
        response = client.post(target.url, data=data)
    elif form_class == "foreign_csrf":
        other = world.csrf(ADMIN if entry.role != ADMIN else CLIN)
        response = client.post(target.url, data={**data, "csrf_token": other})
    elif form_class == "json_body":
        response = client.post(target.url, json={k: v for k, v in data.items()
                                                 if isinstance(v, str)})
    else:
        response = client.post(target.url, data=b"a=" + b"x" * BIG,
                               content_type="application/x-www-form-urlencoded")
    _assert_refused(world, response, before)
    text = response.get_data(as_text=True)
    if form_class == "oversized_body":
        assert response.status_code == 413 and "1 MiB" in text
    else:
        assert response.status_code == 400 and "reload the page" in text


# -- duplicate submissions -----------------------------------------------------------------
def _twice(world: World, entry_id: str) -> tuple[Any, Any, Any]:
    entry = ENTRY_BY_ID[entry_id]
    target = entry.prepare(world)
    first = send(world, entry, target)
    assert first.status_code == entry.ok, first.get_data(as_text=True)[:300]
    after_first = world.counts()
    second = send(world, entry, target)
    assert_no_internals(second.get_data(as_text=True))
    return target, second, after_first


DUPLICATES: dict[str, tuple[int, str]] = {
    # entry: (status of the second identical submission, the field or reason it names)
    "api.create_user": (422, "email"),
    "web.new_user": (422, "email"),
    "api.submit": (409, "submitted"),
    "api.transition": (409, "cancelled"),
    "api.approve_envelope": (409, "approved"),
    "api.confirm_characteristics": (422, "already confirmed"),
    "web.release_hold": (409, "was released"),
    "web.dispose": (409, "was disposed"),
}


@pytest.mark.parametrize("entry_id", list(DUPLICATES), ids=[f"{e}-duplicate" for e in DUPLICATES])
def test_duplicate_submission_is_refused(world: World, entry_id: str) -> None:
    status, named = DUPLICATES[entry_id]
    target, second, after_first = _twice(world, entry_id)
    text = second.get_data(as_text=True)
    assert second.status_code == status, (second.status_code, text[:300])
    assert named in text
    assert world.counts() == after_first, "the duplicate wrote something"
    if entry_id.endswith("create_user") or entry_id.endswith("new_user"):
        assert rows_of(world.app, User, email=target.body["email"]) == 1
    if entry_id == "api.submit":
        assert rows_of(world.app, Signature, target_type="request_revision",
                       target_id=world.case_view(target.ref["case_id"])["revisions"][0]["id"]) == 1
    if entry_id == "api.transition":
        assert rows_of(world.app, CaseTransition, case_id=target.ref["case_id"]) == 2
    if entry_id == "api.confirm_characteristics":
        assert rows_of(world.app, CharacteristicConfirmation, case_id=target.ref["case_id"]) == 1


ALLOWED_TWICE = ("api.create_case", "api.comment", "api.create_token", "web.comment",
                 "web.place_hold")


@pytest.mark.parametrize("entry_id", ALLOWED_TWICE, ids=[f"{e}-duplicate" for e in ALLOWED_TWICE])
def test_duplicate_submission_where_no_rule_forbids_it(world: World, entry_id: str) -> None:
    """No rule forbids two drafts for one patient, two comments, two tokens of one name or two
    legal holds on one case (two proceedings may each need one): the second is a distinct
    record (its own id/number), not an overwrite of the first."""
    before = world.counts()
    _target, second, after_first = _twice(world, entry_id)
    assert second.status_code == ENTRY_BY_ID[entry_id].ok
    grown = {t: n - before[0][t] for t, n in after_first[0].items() if n != before[0][t]}
    again = {t: n - after_first[0][t] for t, n in world.counts()[0].items()
             if n != after_first[0][t]}
    main_table = {"api.create_case": "case", "api.comment": "comment",
                  "web.comment": "comment", "api.create_token": "api_token",
                  "web.place_hold": "legal_hold"}[entry_id]
    assert grown[main_table] == again[main_table] == 1
