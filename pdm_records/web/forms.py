"""Reading an HTML form through a shared marshmallow schema (validated once, STYLE §8)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema
from marshmallow import ValidationError as SchemaError
from werkzeug.datastructures import MultiDict

from ..errors import ValidationError
from ..schemas import flatten_messages


def load_form(schema: Schema, form: MultiDict[str, str], lists: tuple[str, ...] = ()) -> Any:
    """Load form data with ``schema``; raise :class:`ValidationError` with per-field messages.

    Empty optional fields are dropped so that the schema's defaults apply.
    """
    data: dict[str, Any] = {}
    for key in form:
        if key == "csrf_token":
            continue
        if key in lists:
            data[key] = form.getlist(key)
        elif form.get(key, "") != "":
            data[key] = form.get(key)
    for key in lists:
        data.setdefault(key, [])
    try:
        return schema.load(data, unknown="exclude")
    except SchemaError as exc:
        raise ValidationError("Please correct the marked fields.",
                              flatten_messages(exc.messages)) from exc
