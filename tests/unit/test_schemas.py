"""Input schemas and error flattening: each input validated once (STYLE §8)."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from pdm_records.schemas import UserCreateSchema, flatten_messages

VALID: dict[str, Any] = {
    "email": "ana.mendes@clinic.example",
    "printed_name": "Dr. Ana Mendes",
    "password": "correct horse battery staple",
    "roles": ["clinician"],
}


def load_errors(**changes: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as excinfo:
        UserCreateSchema().load({**VALID, **changes})
    return flatten_messages(excinfo.value.messages)


# -- flatten_messages -------------------------------------------------------------------------


def test_flatten_unwraps_webargs_location() -> None:
    assert flatten_messages({"json": {"email": ["x"]}}) == {"email": ["x"]}


def test_flatten_merges_locations() -> None:
    messages = {"json": {"email": ["bad"]}, "query": {"page": ["too big"], "email": ["again"]}}
    assert flatten_messages(messages) == {"email": ["bad", "again"], "page": ["too big"]}


def test_flatten_names_list_items_by_index() -> None:
    messages = {"json": {"roles": {0: ["Must be one of: clinician."], 2: ["Not a string."]}}}
    assert flatten_messages(messages) == {
        "roles.0": ["Must be one of: clinician."],
        "roles.2": ["Not a string."],
    }


def test_flatten_nested_objects_use_dotted_names() -> None:
    messages = {"site": {"address": {"city": ["Missing data for required field."]}}}
    assert flatten_messages(messages) == {"site.address.city": ["Missing data for required field."]}


def test_flatten_location_name_is_a_field_when_nested() -> None:
    assert flatten_messages({"meta": {"json": ["bad"]}}) == {"meta.json": ["bad"]}


def test_flatten_schema_level_messages() -> None:
    assert flatten_messages(["whole payload wrong"]) == {"_schema": ["whole payload wrong"]}
    assert flatten_messages("just a string") == {"_schema": ["just a string"]}
    assert flatten_messages({"json": ["bad json"]}) == {"_schema": ["bad json"]}
    assert flatten_messages({}) == {}


# -- UserCreateSchema -------------------------------------------------------------------------


def test_valid_payload_keeps_non_ascii_name_verbatim() -> None:
    name = 'Zoë "Zé" Ölçer-Łukasz <Ünal> 王芳'

    data = UserCreateSchema().load({**VALID, "printed_name": f"  {name}  ",
                                    "roles": ["clinician", "quality"]})

    assert data["printed_name"] == name
    assert data["email"] == VALID["email"]
    assert data["roles"] == ["clinician", "quality"]
    assert data["registration_number"] is None
    assert data["site_id"] is None


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "ana mendes@clinic.example",
                                   "@clinic.example", "ana@"])
def test_bad_email_refused(email: str) -> None:
    errors = load_errors(email=email)
    assert list(errors) == ["email"]
    assert "valid e-mail" in errors["email"][0]


def test_unknown_role_refused_with_indexed_field_name() -> None:
    errors = load_errors(roles=["clinician", "superuser"])
    assert list(errors) == ["roles.1"]
    assert "clinician" in errors["roles.1"][0]


def test_empty_roles_refused() -> None:
    errors = load_errors(roles=[])
    assert list(errors) == ["roles"]


def test_missing_required_fields_reported_by_name() -> None:
    with pytest.raises(ValidationError) as excinfo:
        UserCreateSchema().load({})
    assert set(flatten_messages(excinfo.value.messages)) == {
        "email", "printed_name", "password", "roles",
    }


@pytest.mark.parametrize(
    "name",
    [
        "Ana\x00Mendes",
        "Ana\x07Mendes",
        "Ana\x1bMendes",
        "Ana\x7fMendes",
        "Ana \u202eSednem",  # RIGHT-TO-LEFT OVERRIDE
        "Ana \u202bMendes",  # RIGHT-TO-LEFT EMBEDDING
        "Ana \u2067Mendes\u2069",  # RIGHT-TO-LEFT ISOLATE ... POP DIRECTIONAL ISOLATE
    ],
    ids=lambda n: repr(n),
)
def test_control_and_direction_characters_in_printed_name_refused(name: str) -> None:
    errors = load_errors(printed_name=name)
    assert list(errors) == ["printed_name"]
    assert "text-direction characters" in errors["printed_name"][0]


def test_too_short_printed_name_refused_after_trimming() -> None:
    errors = load_errors(printed_name="  A  ")
    assert list(errors) == ["printed_name"]


@pytest.mark.parametrize("name", [
    "Ana\u200fMendes", "Ana\u200eMendes", "Ana\u061cMendes", "Ana\u200bMendes",
    "Ana\nApproved by the Director", "Ana\tMendes", "Ana\ufeffMendes",
])
def test_invisible_marks_and_line_breaks_in_a_printed_name_are_refused(name: str) -> None:
    payload = {"email": "a@example.org", "printed_name": name,
               "password": "a long enough passphrase", "roles": ["engineer"]}
    with pytest.raises(ValidationError) as info:
        UserCreateSchema().load(payload)
    assert "printed_name" in info.value.messages  # type: ignore[operator]


# -- the OpenAPI pattern of a Text field ---------------------------------------------------------

PATTERN_SAMPLES = [
    "", " ", "a", " a ", "ab", "a b", "  ab  ", "abc", "a\u00a0b", "a\tb", "a\nb", "\na\n",
    "a\rb", "a\x00b", "a\x1fb", "\x7f", "a\x85b", "a\u202eb", "a\u200bb", "a\u2028b",
    "\ufeffab", "a\u061cb", "Ünïcödé 名前", "\u3000ab\u3000", "a" * 12, " " * 5 + "ab",
    "\x1cab", "ab\x1f", "\x85ab", "\x0bab", "\tab\r\n", " a\n b ", "\n\n", "a \u3000 b",
]


@pytest.mark.parametrize("minimum", [0, 1, 2, 3])
@pytest.mark.parametrize("multiline", [False, True])
def test_text_json_pattern_accepts_exactly_what_the_field_loads(minimum: int,
                                                                multiline: bool) -> None:
    """The pattern in the OpenAPI document (schemathesis generates from it, and checks that
    what matches is accepted and what does not is refused) agrees with the field itself."""
    import re

    from marshmallow import Schema, validate

    from pdm_records.schemas import Text

    field = Text(validate=validate.Length(min=minimum, max=50), multiline=multiline)
    schema = Schema.from_dict({"value": field})()
    pattern = re.compile(field.json_pattern())
    for sample in PATTERN_SAMPLES:
        try:
            schema.load({"value": sample})
            loads = True
        except ValidationError:
            loads = False
        assert (pattern.search(sample) is not None) == loads, (sample, minimum, multiline)
