"""Every signature meaning names who may sign with it (21 CFR Part 11 §11.10(g): authority
checks). A meaning added without an entry would refuse every signer."""

from __future__ import annotations

from pdm_records.models import SignatureMeaning
from pdm_records.services.signatures import SIGNING_ROLES


def test_every_signature_meaning_has_signing_roles() -> None:
    missing = [m.value for m in SignatureMeaning if not SIGNING_ROLES.get(m)]
    assert missing == []


def test_holds_are_placed_and_released_by_quality_alone() -> None:
    assert SIGNING_ROLES[SignatureMeaning.LEGAL_HOLD] == frozenset({"quality"})
    assert SIGNING_ROLES[SignatureMeaning.HOLD_RELEASED] == frozenset({"quality"})
