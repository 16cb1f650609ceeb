"""Input and output schemas (marshmallow), shared by the HTML forms and the JSON API.

Each input is validated once, here (STYLE §8); rules that need the database live in services.
"""

from __future__ import annotations

import re
from typing import Any

from email_validator import EmailNotValidError, validate_email
from marshmallow import Schema, ValidationError, fields, validate, validates

from ..passwords import password_problems
from ..permissions import Role

# Control characters, bidirectional overrides/isolates/marks and invisible characters: they can
# make a printed name or a reason read differently on screen and in exports than it is stored.
# C1 controls (U+0080–U+009F, e.g. the 8-bit CSI U+009B of terminal escapes) count as control
# characters too, and a lone surrogate (only from a JSON "\\ud800" escape) is not text at all.
FORBIDDEN = ("\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029"
             "\u202a-\u202e\u2066-\u2069\ufeff")
CONTROL_CHARS = re.compile(f"[{FORBIDDEN}\ud800-\udfff]")
LINE_BREAKS = re.compile("[\t\r\n]")


def no_control_chars(value: str, *, multiline: bool = False) -> None:
    if CONTROL_CHARS.search(value):
        raise ValidationError("Remove control, invisible or text-direction characters.")
    if not multiline and LINE_BREAKS.search(value):
        raise ValidationError("Use a single line (no tabs or line breaks).")


def trimmed_text(value: str, *, multiline: bool = False) -> str:
    """``value`` without surrounding white space, refused if it holds a refused character. The
    check looks at the value as sent: some control characters count as white space (U+001C–
    U+001F, U+0085) and would otherwise be trimmed away unseen; a line break at either end is
    only trimmed."""
    if CONTROL_CHARS.search(value):
        raise ValidationError("Remove control, invisible or text-direction characters.")
    value = value.strip()
    no_control_chars(value, multiline=multiline)
    return value


REQUIRED: dict[str, Any] = {"required": "This field is required.",
                            "null": "This field is required."}


class Text(fields.String):
    """A trimmed string without control characters; single-line unless ``multiline=True``."""

    default_error_messages = {**fields.String.default_error_messages, **REQUIRED}

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.multiline = multiline

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return trimmed_text(super()._deserialize(value, attr, data, **kwargs),
                            multiline=self.multiline)

    def json_pattern(self) -> str:
        """The values this field accepts, as a JSON Schema ``pattern`` for the OpenAPI document:
        none of the refused characters, white space at either end (it is trimmed), no tab or
        line break within a single-line value, and at least the minimum length between the first
        and the last character that is not white space. Lone surrogates, refused as well, are
        left out: a pattern cannot name them portably."""
        refused = "".join(c if c == "-" else f"\\u{ord(c):04x}" for c in FORBIDDEN)
        edge = f"[^\\S{refused}]"  # white space that is trimmed
        visible = f"[^\\s{refused}]"
        inner = f"[^{refused}]" if self.multiline else f"[^{refused}\\t\\r\\n]"
        minimum = max((v.min for v in self.validators
                       if isinstance(v, validate.Length) and v.min is not None), default=0)
        if minimum == 0:
            content = f"(?:{visible}(?:{inner}*{visible})?)?"
        elif minimum == 1:
            content = f"{visible}(?:{inner}*{visible})?"
        else:
            content = f"{visible}{inner}{{{minimum - 2},}}{visible}"
        return f"^{edge}*{content}{edge}*$"


class UserCreateSchema(Schema):
    email = Text(required=True, validate=validate.Length(max=255))
    printed_name = Text(required=True, validate=validate.Length(min=2, max=200))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256),
                             error_messages={"required": "Enter a password."})
    roles = fields.List(
        fields.String(validate=validate.OneOf(
            [r.value for r in Role], error="Unknown role; choose from {choices}.")),
        required=True, validate=validate.Length(min=1, max=4, error="Choose one or more roles."),
        error_messages={"required": "Choose one or more roles."})
    registration_number = Text(load_default=None, validate=validate.Length(max=64))
    site_id = fields.Integer(load_default=None, allow_none=True, strict=False)

    @validates("password")
    def _password(self, value: str, **_: Any) -> None:
        if problems := password_problems(value):
            raise ValidationError(problems)

    @validates("email")
    def _email(self, value: str, **_: Any) -> None:
        try:
            validate_email(value, check_deliverability=False)
        except EmailNotValidError as exc:
            raise ValidationError(f"Enter a valid e-mail address ({exc}).") from exc


class UserSchema(Schema):
    id = fields.Integer()
    email = fields.String()
    printed_name = fields.String()
    registration_number = fields.String(allow_none=True)
    site_id = fields.Integer(allow_none=True)
    roles = fields.List(fields.String(), attribute="role_names")
    active = fields.Boolean()


class TokenCreateSchema(Schema):
    name = Text(required=True, validate=validate.Length(min=1, max=100))


class TokenSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(metadata={"description": "The secret; shown only in this response."})


class SiteSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    kind = fields.String()
    country = fields.String()


class DeviceParameterSchema(Schema):
    name = fields.String()
    unit = fields.String()
    description = fields.String()


class DeviceTypeSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    category = fields.String()
    implantable = fields.Boolean()
    expected_lifetime_years = fields.Integer()
    description = fields.String()
    parameters = fields.List(fields.Nested(DeviceParameterSchema))


class ErrorSchema(Schema):
    """The body of every API error (``pdm_records.web.errors.render_error``)."""

    error = fields.String(required=True, metadata={
        "description": "machine-readable code, e.g. `validation_error`, `conflict`"})
    message = fields.String(required=True, metadata={"description": "what is wrong, for people"})
    field_errors = fields.Dict(
        keys=fields.String(), values=fields.List(fields.String()), required=True,
        metadata={"description": "per input field, what is wrong with it (may be empty)"})


class PageQuerySchema(Schema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))


def flatten_messages(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow/webargs nested messages into ``{"field": ["message", …]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in {"json", "form", "query", "files", "headers", "path"} and not prefix:
                for k, v in flatten_messages(value).items():
                    out.setdefault(k, []).extend(v)
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            for k, v in flatten_messages(value, name).items():
                out.setdefault(k, []).extend(v)
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            out[prefix or "_schema"] = [str(m) for m in messages]
        else:
            for m in messages:
                for k, v in flatten_messages(m, prefix).items():
                    out.setdefault(k, []).extend(v)
    elif isinstance(messages, str):
        out[prefix or "_schema"] = [messages]
    return out
