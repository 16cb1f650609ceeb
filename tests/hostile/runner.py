"""Sending a matrix case and checking what every hostile case must show."""

from __future__ import annotations

import copy
import re
from typing import Any

from markupsafe import escape

from tests.hostile.conftest import World, assert_no_internals
from tests.hostile.matrix import (
    REFUSE,
    SIGN,
    EntryPoint,
    Field,
    FieldClass,
    Target,
    expected_outcome,
)

# Human labels the redirecting forms use in their flash message (the field's name otherwise).
FLASH_LABELS = {"body": "Comment", "reason": "Reason", "notes": "Notes", "note": "Note",
                "description": "Description", "file": "File", "kind": "Kind", "units": "Units"}


def set_path(body: dict[str, Any], path: str, value: Any) -> None:
    """``items.0.note`` → body["items"][0]["note"] = value (a key of the body as it is)."""
    if path in body:
        body[path] = value
        return
    parts = path.split(".")
    node: Any = body
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


def send(world: World, entry: EntryPoint, target: Target, body: dict[str, Any] | None = None,
         **kwargs: Any) -> Any:
    """Send ``body`` (default: the target's valid body) the way the entry point takes it."""
    body = target.body if body is None else body
    is_api = target.url.startswith("/api/")
    if entry.body == "json" and is_api:
        return world.app.test_client().open(target.url, method=entry.method,
                                            headers=world.api(entry.role), json=body, **kwargs)
    data = {k: (v() if callable(v) else v) for k, v in body.items()}
    extra: dict[str, Any] = {}
    if entry.body == "multipart":
        extra["content_type"] = "multipart/form-data"
    if is_api:
        return world.app.test_client().open(target.url, method=entry.method,
                                            headers=world.api(entry.role), data=data,
                                            **extra, **kwargs)
    data["csrf_token"] = world.csrf(entry.role)
    return world.web(entry.role).open(target.url, method=entry.method, data=data, **extra,
                                      **kwargs)


def names_field(response: Any, name: str) -> bool:
    """The refusal names the field: ``field_errors`` (JSON) or the message next to the field."""
    leaf = name.split(".")[-1]
    body = response.get_json(silent=True)
    if body is not None:
        keys = body.get("field_errors") or {}
        return any(leaf in re.split(r"[.\[\]]", key) or key == name for key in keys)
    text = response.get_data(as_text=True)
    return f'id="{name}-error"' in text or f'id="{leaf}-error"' in text


def assert_not_echoed(text: str, value: Any) -> None:
    """A markup-bearing payload never appears unescaped in a response."""
    if isinstance(value, str) and str(escape(value)) != value:
        assert value not in text, f"payload echoed unescaped: {value!r}"


def run_field_case(world: World, entry: EntryPoint, name: str, cls: FieldClass) -> None:
    spec: Field = entry.fields[name]
    target = entry.prepare(world)
    value = cls.make(spec)
    body = copy.deepcopy({k: v for k, v in target.body.items() if not callable(v)})
    body.update({k: v for k, v in target.body.items() if callable(v)})
    key = target.ref.get("aliases", {}).get(name, name)
    set_path(body, key, [value] if spec.listed else value)
    before = world.counts()
    response = send(world, entry, target, body)
    text = response.get_data(as_text=True)
    assert_no_internals(text)
    assert response.status_code < 500, text[:500]
    outcome = expected_outcome(cls, spec)
    if outcome == REFUSE:
        if entry.refused_redirects:
            assert response.status_code == 302, (response.status_code, text[:300])
            page = world.web(entry.role).get(response.headers["Location"]).get_data(as_text=True)
            label = FLASH_LABELS.get(name, name)
            flashes = re.findall(r'<div class="flash flash-error"[^>]*>(.*?)</div>', page, re.S)
            assert any(label in f for f in flashes), (label, flashes)
            assert_not_echoed(page, value)
            said = " ".join(flashes)
        else:
            said = text
            assert 400 <= response.status_code < 500, (response.status_code, text[:500])
            assert names_field(response, key), (key, text[:800])
        after = world.counts()
        if spec.kind == SIGN:
            # A password that was checked and is wrong is itself on record: exactly one
            # ``auth.failed`` audit event (21 CFR Part 11 §11.10(e), §11.300(d); it counts
            # towards the lock-out). A value refused by the request's schema before any check
            # (too long, not a string) records nothing. Nothing else may change.
            tables, objects = after
            grown = {t: n - before[0].get(t, 0) for t, n in tables.items()
                     if n != before[0].get(t, 0)}
            checked = "password is not correct" in said
            assert grown == ({"audit_event": 1} if checked else {}), (grown, said[:300])
            assert objects == before[1], "a refused signature stored an object"
        else:
            assert after == before, "a refused request changed rows or objects"
        # An API refusal names the field and the rule, never the payload itself.
        if (entry.body == "json" or response.is_json) and isinstance(value, str) \
                and len(value) >= 8:
            assert value not in text and str(escape(value)) not in text, text[:500]
        assert_not_echoed(text, value)
        return
    assert response.status_code == entry.ok, (response.status_code, text[:800])
    assert_not_echoed(text if not response.is_json else "", value)
    if entry.stored is not None:
        assert entry.stored(world, target, response, name) == (
            [value] if spec.listed else value), "not stored verbatim"
    if entry.shown_at is not None:
        role, url = entry.shown_at(world, target, response)
        page = world.page(role, url)
        assert str(escape(value)) in page, f"{value!r} not shown (escaped) on {url}"
        assert_not_echoed(page, value)
