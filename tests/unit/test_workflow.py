"""The case workflow table of the requests issue, row by row, allowed and refused
(21 CFR Part 11 §11.10(f) operational checks, §11.10(g) authority checks)."""

from __future__ import annotations

import itertools

import pytest

from pdm_records.models import CaseStatus as S
from pdm_records.models import SignatureMeaning as M
from pdm_records.workflow import ActorFacts, TransitionRefused, find_transition

PRESCRIBER = ActorFacts(roles=frozenset({"clinician"}), is_prescriber=True)
OTHER_CLINICIAN = ActorFacts(roles=frozenset({"clinician"}), is_prescriber=False)
ENGINEER = ActorFacts(roles=frozenset({"engineer"}), is_prescriber=False,
                      latest_iteration_passed=True)
QUALITY = ActorFacts(roles=frozenset({"quality"}), is_prescriber=False)
ADMIN = ActorFacts(roles=frozenset({"admin"}), is_prescriber=False)
PERSONAS = {"prescriber": PRESCRIBER, "other clinician": OTHER_CLINICIAN,
            "engineer": ENGINEER, "quality": QUALITY, "admin": ADMIN}

# (from, to) -> (who may, signature meaning). Written out from the table.
TABLE: dict[tuple[S, S], tuple[set[str], M | None]] = {
    (S.DRAFT, S.SUBMITTED): ({"prescriber"}, M.AUTHORED),
    (S.SUBMITTED, S.ACCEPTED): ({"engineer"}, None),
    (S.SUBMITTED, S.REJECTED): ({"engineer"}, None),
    (S.SUBMITTED, S.CHANGES_REQUESTED): ({"engineer"}, None),
    (S.ACCEPTED, S.CHANGES_REQUESTED): ({"engineer"}, None),
    (S.CHANGES_REQUESTED, S.SUBMITTED): ({"prescriber"}, M.AUTHORED),
    (S.IN_DESIGN, S.VERIFIED): ({"engineer"}, M.VERIFIED),
    (S.VERIFIED, S.AWAITING_APPROVAL): ({"engineer"}, None),
    (S.AWAITING_APPROVAL, S.APPROVED): ({"prescriber"}, M.APPROVED),
    (S.AWAITING_APPROVAL, S.IN_DESIGN): ({"prescriber"}, None),
    (S.APPROVED, S.RELEASED): ({"quality"}, M.RELEASED),
    (S.RELEASED, S.DELIVERED): ({"engineer", "quality"}, None),
    (S.DRAFT, S.CANCELLED): ({"prescriber", "quality"}, None),
    (S.SUBMITTED, S.CANCELLED): ({"prescriber", "quality"}, None),
    **{(source, S.CANCELLED): ({"quality"}, None)
       for source in (S.ACCEPTED, S.CHANGES_REQUESTED, S.IN_DESIGN, S.VERIFIED,
                      S.AWAITING_APPROVAL, S.APPROVED)},
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(S, S)))
def test_every_pair_of_states_for_every_persona(source: S, target: S) -> None:
    allowed, meaning = TABLE.get((source, target), (set(), None))
    for name, facts in PERSONAS.items():
        if name in allowed:
            step = find_transition(source, target, facts)
            assert step.signature == meaning, (source, target, name)
        else:
            with pytest.raises(TransitionRefused) as info:
                find_transition(source, target, facts)
            if not allowed:  # the state does not allow it at all: 409 naming the state
                assert info.value.status == 409
                assert f"The case is {source.value.replace('_', ' ')}" in info.value.message
                assert "Allowed from here:" in info.value.message
            else:  # the state allows it, not for this actor: 403 naming who may
                assert info.value.status == 403
                assert "may move the case" in info.value.message


def test_accepted_to_in_design_is_automatic_only() -> None:
    for facts in PERSONAS.values():
        with pytest.raises(TransitionRefused):
            find_transition(S.ACCEPTED, S.IN_DESIGN, facts)


def test_a_design_that_has_not_passed_cannot_be_signed_verified() -> None:
    for passed in (None, False):
        facts = ActorFacts(roles=frozenset({"engineer"}), is_prescriber=False,
                           latest_iteration_passed=passed)
        with pytest.raises(TransitionRefused) as info:
            find_transition(S.IN_DESIGN, S.VERIFIED, facts)
        assert info.value.status == 409
        assert "has not passed verification" in info.value.message


def test_the_verifier_cannot_release() -> None:
    facts = ActorFacts(roles=frozenset({"engineer", "quality"}), is_prescriber=False,
                       verified_by_actor=True)
    with pytest.raises(TransitionRefused) as info:
        find_transition(S.APPROVED, S.RELEASED, facts)
    assert info.value.status == 403
    assert "another quality user" in info.value.message
