"""Per-request access to configured adapters (the object store)."""

from __future__ import annotations

from flask import current_app, g

from .storage import ObjectStore


def get_store() -> ObjectStore:
    """The configured object store (built once per request)."""
    if "pdm_store" not in g:
        g.pdm_store = current_app.extensions["pdm_store_factory"]()
    store: ObjectStore = g.pdm_store
    return store
