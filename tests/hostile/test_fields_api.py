"""Hostile values in every field of every JSON API operation (see ``matrix.py``)."""

from __future__ import annotations

import pytest

from tests.hostile.conftest import World
from tests.hostile.matrix import CLASS_BY_ID, ENTRY_BY_ID, field_cases
from tests.hostile.runner import run_field_case

CASES = [c for c in field_cases() if c[0].startswith("api.")]


@pytest.mark.parametrize(("entry", "field", "cls"), CASES,
                         ids=[f"{e}-{f}-{c}" for e, f, c in CASES])
def test_api_field(world: World, entry: str, field: str, cls: str) -> None:
    run_field_case(world, ENTRY_BY_ID[entry], field, CLASS_BY_ID[cls])
