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
        errors: dict[str, list[str]] = {}
        for key, messages in flatten_messages(exc.messages).items():
            # ``roles.0`` → ``roles``: the form shows a list's errors next to the list.
            name = key.split(".", 1)[0] if key.split(".", 1)[0] in lists else key
            errors.setdefault(name, []).extend(messages)
        raise ValidationError("Please correct the marked fields.", errors) from exc
