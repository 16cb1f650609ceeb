"""The hostile-input matrix: entry points × input classes, as data.

* ``ENTRY_POINTS``: every state-changing form and API operation that takes input — the endpoint
  (as in ``app.url_map``), the method, the role that may use it, how to build a valid request
  (``prepare`` makes the record it acts on and returns the URL and a valid body), which fields
  are free text and which are constrained, and where the stored value is read back and shown.
* ``FIELD_CLASSES``: payload generators for one field (oversized, control characters, HTML/JS,
  SQL metacharacters, confusables, RTL marks, …) and ``expected_outcome`` — the rule that says
  whether a value must be refused (4xx naming the field, nothing written) or stored verbatim
  (and shown HTML-escaped).

Request-level classes (malformed JSON, wrong content types, CSRF, duplicates) and uploads
(hostile meshes and file names) are in their own test modules, driven by the same table.
See ``tests/hostile/__init__.py`` for how to add a row.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.conftest import PASSWORD
from tests.hostile.conftest import ADMIN, CLIN, ENG, QUAL, QUAL2, SECOND_QUALITY, World
from tests.meshes import binary_stl

# -- fields -------------------------------------------------------------------------------------
LINE, TEXT, CHOICE, CODE, EMAIL, DATE, INT, NUMBER, SIGN = (
    "line", "text", "choice", "code", "email", "date", "int", "number", "sign")
FREE_TEXT = (LINE, TEXT)


@dataclass(frozen=True)
class Field:
    """One input field. ``kind``: ``line`` (single-line free text), ``text`` (multi-line free
    text), ``choice`` (one of a list), ``code`` (a pattern, e.g. the patient code), ``email``,
    ``date``, ``int``, ``number``, ``sign`` (a signature password: anything wrong is refused).
    ``max``: the stated maximum length of free text. ``listed``: sent as a one-item list."""

    kind: str
    max: int = 0
    listed: bool = False


@dataclass
class Target:
    """A prepared request: where to send it, a valid body, and the records it acts on."""

    url: str
    body: dict[str, Any]
    ref: dict[str, Any] = field(default_factory=dict)


Reader = Callable[[World, Target, Any, str], Any]
Shower = Callable[[World, Target, Any], tuple[str, str]]


@dataclass(frozen=True)
class EntryPoint:
    id: str  # readable case-id prefix, e.g. "api.create_case"
    endpoint: str  # the Flask endpoint, as in app.url_map
    method: str
    role: str
    body: str  # json | form | multipart
    prepare: Callable[[World], Target]
    fields: dict[str, Field]
    ok: int  # status of a valid request (302 for forms that redirect)
    stored: Reader | None = None  # the stored value of a field after success
    shown_at: Shower | None = None  # (role, url) of the HTML page that shows the values
    refused_redirects: bool = False  # the form refuses with a redirect and a flash message


# -- how each entry point builds a valid request ------------------------------------------------
def _case_fields(world: World) -> dict[str, Any]:
    from tests.requests_support import PATIENT_MATCHED, common

    return {**common(world.catalogue, "implant"), **PATIENT_MATCHED}


def _form_case_fields(world: World) -> dict[str, Any]:
    values = _case_fields(world)
    form = {k: str(v) for k, v in values.items() if not isinstance(v, dict)}
    form.pop("device_type_id")
    form["requested_parameters:wall_thickness"] = "2.0"
    return form


def _new_case(world: World) -> Target:
    return Target("/api/v1/cases", _case_fields(world))


def _update_request(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/api/v1/cases/{case_id}/request", {"anatomical_site": "left orbit"},
                  {"case_id": case_id})


def _comment(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/api/v1/cases/{case_id}/comments", {"body": "a comment"}, {"case_id": case_id})


def _cancel(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/api/v1/cases/{case_id}/transitions",
                  {"to": "cancelled", "reason": "duplicate request"}, {"case_id": case_id})


def _submit(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/api/v1/cases/{case_id}/submit", {"password": PASSWORD}, {"case_id": case_id})


def _iteration(world: World) -> Target:
    case_id = world.accepted_case()
    return Target(f"/api/v1/cases/{case_id}/iterations",
                  {"file": lambda: (io.BytesIO(binary_stl()), "design.stl"), "units": "mm",
                   "notes": "first design"}, {"case_id": case_id})


def _attachment(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/api/v1/cases/{case_id}/attachments",
                  {"file": lambda: (io.BytesIO(binary_stl()), "scan.stl"), "kind": "model_3d",
                   "units": "mm"}, {"case_id": case_id})


def _confirm(world: World) -> Target:
    case_id = world.designed_case()
    item = world.confirmation_item(case_id)
    return Target(f"/api/v1/cases/{case_id}/iterations/1/confirmations",
                  {"items": [{"item": item, "met": True, "note": "checked"}]},
                  {"case_id": case_id, "item": item})


def _new_envelope(world: World) -> Target:
    from tests.hostile.conftest import ENVELOPE

    return Target("/api/v1/envelopes", {"device_type_id": world.catalogue["guide"],
                                        "definition": ENVELOPE, "notes": "first version"})


def _update_envelope(world: World) -> Target:
    from tests.hostile.conftest import ENVELOPE

    version_id = world.draft_envelope()
    return Target(f"/api/v1/envelopes/{version_id}", {"definition": dict(ENVELOPE)},
                  {"version_id": version_id})


def _approve_envelope(world: World) -> Target:
    version_id = world.draft_envelope()
    return Target(f"/api/v1/envelopes/{version_id}/approve",
                  {"password": PASSWORD, "totp_code": world.fresh_code(SECOND_QUALITY)},
                  {"version_id": version_id})


def _new_token(world: World) -> Target:
    return Target("/api/v1/tokens", {"name": "workstation"})


_user_serial = iter(range(1, 10**6))


def _new_user(world: World) -> Target:
    n = next(_user_serial)
    return Target("/api/v1/users", {"email": f"hostile-{n}@example.org",
                                    "printed_name": "Hostile Tester",
                                    "password": "a long enough passphrase 42",
                                    "roles": ["engineer"], "registration_number": "R-1"},
                  {"n": n})


# Web forms -----------------------------------------------------------------------------------
def _web_new_case(world: World) -> Target:
    return Target(f"/cases/new/{world.catalogue['implant']}", _form_case_fields(world))


def _web_edit(world: World) -> Target:
    case_id = world.draft_case()
    return Target(f"/cases/{case_id}/edit", _form_case_fields(world), {"case_id": case_id})


def _web_comment(world: World) -> Target:
    target = _comment(world)
    target.url = f"/cases/{target.ref['case_id']}/comments"
    return target


def _web_cancel(world: World) -> Target:
    target = _cancel(world)
    target.url = f"/cases/{target.ref['case_id']}/transition"
    return target


def _web_iteration(world: World) -> Target:
    target = _iteration(world)
    target.url = f"/cases/{target.ref['case_id']}/iterations"
    return target


def _web_attachment(world: World) -> Target:
    target = _attachment(world)
    target.url = f"/cases/{target.ref['case_id']}/attachments"
    target.body["description"] = "pre-operative scan"
    return target


def _web_confirm(world: World) -> Target:
    target = _confirm(world)
    item = target.ref["item"]
    target.url = f"/cases/{target.ref['case_id']}/iterations/1/confirmations"
    target.body = {f"met:{item}": "yes", f"note:{item}": "checked"}
    target.ref["aliases"] = {"note": f"note:{item}"}
    return target


def _web_envelope_edit(world: World) -> Target:
    version_id = world.draft_envelope()
    return Target(f"/envelopes/versions/{version_id}/edit",
                  {"max_faces": "100000", "min_faces": "4", "min_volume": "1",
                   "notes": "first version"}, {"version_id": version_id})


def _web_envelope_import(world: World) -> Target:
    import json

    from tests.hostile.conftest import ENVELOPE

    return Target("/envelopes/import", {
        "file": lambda: (io.BytesIO(json.dumps(ENVELOPE).encode()), "envelope.json"),
        "device_type_id": str(world.catalogue["guide"]), "notes": "imported"})


def _web_token(world: World) -> Target:
    return Target("/account/tokens", {"name": "workstation"})


def _web_user(world: World) -> Target:
    target = _new_user(world)
    target.url = "/admin/users/new"
    target.body["roles"] = "engineer"
    return target


_lost_phone_serial = iter(range(1, 10**6))


def _web_reset_mfa(world: World) -> Target:
    """A fresh enrolled account whose second factor the administrator resets, re-entering
    their password and a code of their own that the product has not accepted yet."""
    n = next(_lost_phone_serial)
    account = world.accounts.user(ENG, email=f"lost-phone-{n}@example.org", enrol=True)
    world.web(ADMIN)  # signed in first: signing in takes a code too
    return Target(f"/admin/users/{account.id}/reset-mfa",
                  {"reason": "phone lost, ticket 4711", "password": PASSWORD,
                   "totp_code": lambda: world.fresh_code(ADMIN)}, {"user_id": account.id})


def _signed_form(world: World, url: str, ref: dict[str, Any]) -> Target:
    """A quality signature form: reason, password and a not-yet-used authenticator code (made
    when the request is sent, so that a second identical submission carries a valid code)."""
    return Target(url, {"reason": "court order 2026/117", "password": PASSWORD,
                        "totp_code": lambda: world.fresh_code(QUAL)}, ref)


def _web_place_hold(world: World) -> Target:
    case_id = world.submitted_case()
    return _signed_form(world, f"/retention/cases/{case_id}/holds", {"case_id": case_id})


def _web_release_hold(world: World) -> Target:
    case_id, hold_id = world.held_case()
    return _signed_form(world, f"/retention/cases/{case_id}/holds/{hold_id}/release",
                        {"case_id": case_id, "hold_id": hold_id})


def _web_dispose(world: World) -> Target:
    case_id = world.disposable_case()
    return _signed_form(world, f"/retention/cases/{case_id}/dispose", {"case_id": case_id})


# -- where the stored value is read back ------------------------------------------------------
def _case_id(target: Target, response: Any) -> int:
    if "case_id" in target.ref:
        return int(target.ref["case_id"])
    body = response.get_json(silent=True)
    if body and "id" in body:
        return int(body["id"])
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])


def _request_value(world: World, target: Target, response: Any, name: str) -> Any:
    view = world.case_view(_case_id(target, response))
    if name == "patient_code":
        return view["patient_code"]
    return view["revisions"][-1]["content"].get(name)


def _comment_value(world: World, target: Target, response: Any, name: str) -> Any:
    return world.case_view(_case_id(target, response))["comments"][-1]["body"]


def _reason_value(world: World, target: Target, response: Any, name: str) -> Any:
    return world.case_view(_case_id(target, response))["history"][-1]["reason"]


def _notes_value(world: World, target: Target, response: Any, name: str) -> Any:
    return world.case_view(_case_id(target, response), ENG)["design_iterations"][-1]["notes"]


def _note_value(world: World, target: Target, response: Any, name: str) -> Any:
    items = world.case_view(_case_id(target, response), ENG)["characteristic_confirmations"]
    return items["items"][0]["confirmation"]["note"]


def _newest(world: World, model: Any, name: str) -> Any:
    import sqlalchemy as sa

    from pdm_records.extensions import db

    with world.app.app_context():
        row = db.session.scalar(sa.select(model).order_by(model.id.desc()).limit(1))
        return getattr(row, name)


def _token_value(world: World, target: Target, response: Any, name: str) -> Any:
    from pdm_records.models import ApiToken

    return _newest(world, ApiToken, name)


def _user_value(world: World, target: Target, response: Any, name: str) -> Any:
    from pdm_records.models import User

    if name == "roles":
        return _newest(world, User, "role_names")
    return _newest(world, User, name)


def _mfa_reset_value(world: World, target: Target, response: Any, name: str) -> Any:
    """The reason kept in the ``mfa.reset`` audit event of the account."""
    import sqlalchemy as sa

    from pdm_records.extensions import db
    from pdm_records.models import AuditEvent

    with world.app.app_context():
        event = db.session.scalar(sa.select(AuditEvent).where(
            AuditEvent.action == "mfa.reset",
            AuditEvent.target_id == str(target.ref["user_id"])))
        assert event is not None and event.after is not None, "the reset was not recorded"
        return event.after[name]


def _envelope_value(world: World, target: Target, response: Any, name: str) -> Any:
    version_id = target.ref.get("version_id")
    if version_id is None:
        body = response.get_json(silent=True)
        version_id = body["id"] if body else int(
            response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    items = world.call("GET", "/api/v1/envelopes", QUAL)["items"]
    return next(v for v in items if v["id"] == version_id)[name]


def _hold_value(world: World, target: Target, response: Any, name: str) -> Any:
    from pdm_records.extensions import db
    from pdm_records.models import LegalHold

    if "hold_id" not in target.ref:
        return _newest(world, LegalHold, "reason")
    with world.app.app_context():
        hold = db.session.get(LegalHold, target.ref["hold_id"])
        return hold.release_reason if hold is not None else None


def _tombstone_value(world: World, target: Target, response: Any, name: str) -> Any:
    from pdm_records.models import Tombstone

    return _newest(world, Tombstone, "reason")


def _quality_case_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    return QUAL, f"/cases/{target.ref['case_id']}"


def _case_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    return CLIN, f"/cases/{_case_id(target, response)}"


def _engineer_case_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    return ENG, f"/cases/{_case_id(target, response)}"


def _envelope_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    version_id = target.ref.get("version_id")
    if version_id is None:
        body = response.get_json(silent=True)
        version_id = body["id"] if body else int(
            response.headers["Location"].rstrip("/").rsplit("/", 1)[-1])
    return QUAL, f"/envelopes/versions/{version_id}"


def _tokens_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    return (QUAL if target.url.startswith("/account") else CLIN), "/account/tokens"


def _users_page(world: World, target: Target, response: Any) -> tuple[str, str]:
    return ADMIN, "/admin/users?page=1"


# -- the entry-point table ----------------------------------------------------------------------
REQUEST_TEXT = {"anatomical_site": Field(LINE, 200), "intended_use": Field(TEXT, 1000),
                "clinical_indication": Field(TEXT, 2000), "processing_applied": Field(TEXT, 2000),
                "image_quality_notes": Field(TEXT, 2000)}
REQUEST_CONSTRAINED = {"patient_code": Field(CODE), "side": Field(CHOICE),
                       "imaging_modality": Field(CHOICE), "needed_by": Field(DATE)}

ENTRY_POINTS: tuple[EntryPoint, ...] = (
    # JSON API ------------------------------------------------------------------------------
    EntryPoint("api.create_token", "api_tokens.create_token", "POST", CLIN, "json", _new_token,
               {"name": Field(LINE, 100)}, 201, _token_value, _tokens_page),
    EntryPoint("api.create_user", "api_users.create_user", "POST", ADMIN, "json", _new_user,
               {"email": Field(EMAIL), "printed_name": Field(LINE, 200),
                "registration_number": Field(LINE, 64), "roles": Field(CHOICE, listed=True)},
               201, _user_value, _users_page),
    EntryPoint("api.create_case", "api_cases.create_case", "POST", CLIN, "json", _new_case,
               {**REQUEST_TEXT, **REQUEST_CONSTRAINED, "institution_id": Field(INT)}, 201,
               _request_value, _case_page),
    EntryPoint("api.update_request", "api_cases.update_request", "PATCH", CLIN, "json",
               _update_request, {**REQUEST_TEXT, **REQUEST_CONSTRAINED}, 200, _request_value,
               _case_page),
    EntryPoint("api.comment", "api_cases.comment", "POST", CLIN, "json", _comment,
               {"body": Field(TEXT, 5000)}, 201, _comment_value, _case_page),
    EntryPoint("api.transition", "api_cases.transition", "POST", CLIN, "json", _cancel,
               {"reason": Field(TEXT, 2000), "to": Field(CHOICE)}, 200, _reason_value,
               _case_page),
    EntryPoint("api.submit", "api_cases.submit", "POST", CLIN, "json", _submit,
               {"password": Field(SIGN)}, 200),
    EntryPoint("api.add_iteration", "api_cases.add_iteration", "POST", ENG, "multipart",
               _iteration, {"notes": Field(TEXT, 5000), "units": Field(CHOICE)}, 201,
               _notes_value),
    EntryPoint("api.add_attachment", "api_cases.add_attachment", "POST", CLIN, "multipart",
               _attachment, {"kind": Field(CHOICE), "units": Field(CHOICE)}, 201),
    EntryPoint("api.confirm_characteristics", "api_cases.confirm_characteristics", "POST", ENG,
               "json", _confirm, {"items.0.note": Field(TEXT, 2000),
                                  "items.0.item": Field(CHOICE)}, 201, _note_value,
               _engineer_case_page),
    EntryPoint("api.create_envelope", "api_envelopes.create_envelope", "POST", QUAL, "json",
               _new_envelope, {"notes": Field(TEXT, 5000), "device_type_id": Field(INT)}, 201,
               _envelope_value, _envelope_page),
    EntryPoint("api.update_envelope", "api_envelopes.update_envelope", "PATCH", QUAL, "json",
               _update_envelope, {"definition.max_faces": Field(INT),
                                  "definition": Field(CHOICE)}, 200),
    EntryPoint("api.approve_envelope", "api_envelopes.approve_envelope", "POST", QUAL2,
               "json", _approve_envelope, {"password": Field(SIGN)}, 200),
    # HTML forms ----------------------------------------------------------------------------
    EntryPoint("web.tokens", "account.tokens", "POST", QUAL, "form", _web_token,
               {"name": Field(LINE, 100)}, 200, _token_value, _tokens_page),
    EntryPoint("web.new_user", "admin.new_user", "POST", ADMIN, "form", _web_user,
               {"email": Field(EMAIL), "printed_name": Field(LINE, 200),
                "registration_number": Field(LINE, 64), "roles": Field(CHOICE)}, 302,
               _user_value, _users_page),
    EntryPoint("web.reset_mfa", "admin.reset_mfa", "POST", ADMIN, "form", _web_reset_mfa,
               {"reason": Field(TEXT, 2000), "password": Field(SIGN)}, 302, _mfa_reset_value,
               refused_redirects=True),
    EntryPoint("web.new_case", "cases.new", "POST", CLIN, "form", _web_new_case,
               {**REQUEST_TEXT, **REQUEST_CONSTRAINED,
                "requested_parameters:wall_thickness": Field(NUMBER)}, 302, _request_value,
               _case_page),
    EntryPoint("web.edit_case", "cases.edit", "POST", CLIN, "form", _web_edit,
               {**REQUEST_TEXT, **REQUEST_CONSTRAINED}, 302, _request_value, _case_page),
    EntryPoint("web.comment", "cases.comment", "POST", CLIN, "form", _web_comment,
               {"body": Field(TEXT, 5000)}, 302, _comment_value, _case_page,
               refused_redirects=True),
    EntryPoint("web.transition", "cases.transition", "POST", CLIN, "form", _web_cancel,
               {"reason": Field(TEXT, 2000)}, 302, _reason_value, _case_page,
               refused_redirects=True),
    EntryPoint("web.upload_iteration", "cases.upload_iteration", "POST", ENG, "multipart",
               _web_iteration, {"notes": Field(TEXT, 5000), "units": Field(CHOICE)}, 302,
               _notes_value, refused_redirects=True),
    EntryPoint("web.upload", "cases.upload", "POST", CLIN, "multipart", _web_attachment,
               {"description": Field(TEXT, 500), "kind": Field(CHOICE),
                "units": Field(CHOICE)}, 302, refused_redirects=True),
    EntryPoint("web.confirm", "cases.confirm", "POST", ENG, "form", _web_confirm,
               {"note": Field(TEXT, 2000)}, 302, _note_value, _engineer_case_page,
               refused_redirects=True),
    EntryPoint("web.envelope_edit", "envelopes.edit", "POST", QUAL, "form", _web_envelope_edit,
               {"notes": Field(TEXT, 5000), "min_volume": Field(NUMBER),
                "max_faces": Field(INT)}, 302, _envelope_value, _envelope_page),
    EntryPoint("web.envelope_import", "envelopes.import_draft", "POST", QUAL, "multipart",
               _web_envelope_import, {"notes": Field(TEXT, 5000)}, 302, _envelope_value,
               _envelope_page),
    # Retention (signed by quality: reason, password and authenticator code).
    EntryPoint("web.place_hold", "retention.place_hold", "POST", QUAL, "form", _web_place_hold,
               {"reason": Field(TEXT, 2000), "password": Field(SIGN)}, 302, _hold_value,
               _quality_case_page, refused_redirects=True),
    EntryPoint("web.release_hold", "retention.release_hold", "POST", QUAL, "form",
               _web_release_hold, {"reason": Field(TEXT, 2000), "password": Field(SIGN)}, 302,
               _hold_value, _quality_case_page, refused_redirects=True),
    EntryPoint("web.dispose", "retention.dispose", "POST", QUAL, "form", _web_dispose,
               {"reason": Field(TEXT, 2000), "password": Field(SIGN)}, 302, _tombstone_value,
               _quality_case_page, refused_redirects=True),
)
ENTRY_BY_ID = {e.id: e for e in ENTRY_POINTS}

# -- input classes for one field ----------------------------------------------------------------
SCRIPT = "<script>alert('pdm')</script>"


@dataclass(frozen=True)
class FieldClass:
    id: str
    make: Callable[[Field], Any]
    json_only: bool = False


FIELD_CLASSES: tuple[FieldClass, ...] = (
    FieldClass("oversized", lambda f: "a" * ((f.max or 300) + 1)),
    FieldClass("nul", lambda f: "ab\x00cd"),
    FieldClass("escape_sequence", lambda f: "ab\x1b[31mred"),
    FieldClass("c1_control", lambda f: "ab\x9b31mcd"),
    FieldClass("rtl_override", lambda f: "abc\u202egpj.exe"),
    FieldClass("rtl_mark", lambda f: "abc\u200fdef"),
    FieldClass("zero_width", lambda f: "ab\u200bcd"),
    FieldClass("line_break", lambda f: "first line\nsecond line"),
    FieldClass("html_script", lambda f: SCRIPT),
    FieldClass("html_attribute", lambda f: '"><img src=x onerror=alert(1)>'),
    FieldClass("sql_quote", lambda f: "O'Brien' OR '1'='1"),
    FieldClass("sql_comment", lambda f: "x'; DROP TABLE cases; --"),
    FieldClass("confusable", lambda f: "Pаtiеnt Ѕmith"),  # Cyrillic а, е, Ѕ
    FieldClass("astral", lambda f: "mandible 🦴 𝔭𝔩𝔞𝔱𝔢"),
    FieldClass("lone_surrogate", lambda f: "ab\ud800cd", json_only=True),
    FieldClass("wrong_type_number", lambda f: 12345, json_only=True),
    FieldClass("wrong_type_object", lambda f: {"$gt": ""}, json_only=True),
)
CLASS_BY_ID = {c.id: c for c in FIELD_CLASSES}

REFUSE, STORE = "refuse", "store"
# What each free-text class must do: a stated rule (length, no control/bidi/invisible
# characters, single line, a string) is broken → refused; anything else → stored verbatim.
FREE_TEXT_RULES = {
    "oversized": REFUSE, "nul": REFUSE, "escape_sequence": REFUSE, "c1_control": REFUSE,
    "rtl_override": REFUSE, "rtl_mark": REFUSE, "zero_width": REFUSE, "lone_surrogate": REFUSE,
    "wrong_type_number": REFUSE, "wrong_type_object": REFUSE,
    "line_break": "line:refuse,text:store",
    "html_script": STORE, "html_attribute": STORE, "sql_quote": STORE, "sql_comment": STORE,
    "confusable": STORE, "astral": STORE,
}


def expected_outcome(cls: FieldClass, spec: Field) -> str:
    """Free text: the rule table above. Constrained fields (choices, patterns, e-mail, dates,
    numbers, signature passwords): no hostile value is a valid one, so each is refused."""
    if spec.kind not in FREE_TEXT:
        return REFUSE
    rule = FREE_TEXT_RULES[cls.id]
    if ":" in rule:
        return dict(part.split(":") for part in rule.split(","))[spec.kind]
    return rule


# A constrained field refuses every hostile value alike: a few classes stand for all of them.
CONSTRAINED_CLASSES = {"oversized", "nul", "html_script", "sql_quote", "confusable",
                       "wrong_type_number"}


def field_cases() -> list[tuple[str, str, str]]:
    """(entry id, field, class id) for every applicable combination."""
    cases = []
    for entry in ENTRY_POINTS:
        for name, spec in entry.fields.items():
            for cls in FIELD_CLASSES:
                if cls.json_only and entry.body != "json":
                    continue
                if spec.kind not in FREE_TEXT and cls.id not in CONSTRAINED_CLASSES:
                    continue
                if spec.kind in (INT, NUMBER) and cls.id == "wrong_type_number":
                    continue  # a number is the right type there
                cases.append((entry.id, name, cls.id))
    return cases
