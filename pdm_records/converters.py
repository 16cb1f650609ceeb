"""URL converters of the application's routes."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import IntegerConverter, Map


class RowId(IntegerConverter):
    """``<int:…>`` in every route is a row id or a 1-based number, stored as a 32-bit
    integer (PostgreSQL ``integer``): 1 … 2**31 - 1. Anything else is a 404 at routing, before
    any query (on PostgreSQL a larger value would otherwise be an out-of-range error), and the
    OpenAPI document states the range (flask-smorest reads ``min``/``max``)."""

    def __init__(self, url_map: Map, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)
