"""The case workflow as data: who may move a case from one state to another, and how.

Pure (no Flask, no database): :func:`check_transition` answers whether an actor, described by
:class:`ActorFacts`, may take a transition, and why not. The order is enforced as an operational
check (21 CFR Part 11 §11.10(f)): no approval before verification, no release of a failed design.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .models.cases import CaseStatus
from .models.signatures import SignatureMeaning
from .permissions import Role


class Who(StrEnum):
    PRESCRIBER = "prescriber"  # the clinician who prescribed this case
    ENGINEER = "engineer"
    QUALITY = "quality"
    ENGINEER_OR_QUALITY = "engineer_or_quality"
    PRESCRIBER_OR_QUALITY = "prescriber_or_quality"
    SYSTEM = "system"


@dataclass(frozen=True)
class Transition:
    source: CaseStatus
    target: CaseStatus
    who: Who
    signature: SignatureMeaning | None = None
    reason_required: bool = False
    label: str = ""


S = CaseStatus
TRANSITIONS: tuple[Transition, ...] = (
    Transition(S.DRAFT, S.SUBMITTED, Who.PRESCRIBER, SignatureMeaning.AUTHORED,
               label="Sign and submit"),
    Transition(S.SUBMITTED, S.ACCEPTED, Who.ENGINEER, label="Accept"),
    Transition(S.SUBMITTED, S.REJECTED, Who.ENGINEER, reason_required=True, label="Reject"),
    Transition(S.SUBMITTED, S.CHANGES_REQUESTED, Who.ENGINEER, reason_required=True,
               label="Request changes"),
    Transition(S.ACCEPTED, S.CHANGES_REQUESTED, Who.ENGINEER, reason_required=True,
               label="Request changes"),
    Transition(S.CHANGES_REQUESTED, S.SUBMITTED, Who.PRESCRIBER, SignatureMeaning.AUTHORED,
               label="Sign and resubmit"),
    Transition(S.ACCEPTED, S.IN_DESIGN, Who.SYSTEM, label="First design iteration"),
    Transition(S.IN_DESIGN, S.VERIFIED, Who.ENGINEER, SignatureMeaning.VERIFIED,
               label="Sign as verified"),
    Transition(S.VERIFIED, S.AWAITING_APPROVAL, Who.ENGINEER, label="Send for approval"),
    Transition(S.AWAITING_APPROVAL, S.APPROVED, Who.PRESCRIBER, SignatureMeaning.APPROVED,
               label="Approve the final design"),
    Transition(S.AWAITING_APPROVAL, S.IN_DESIGN, Who.PRESCRIBER, reason_required=True,
               label="Request design changes"),
    Transition(S.APPROVED, S.RELEASED, Who.QUALITY, SignatureMeaning.RELEASED, label="Release"),
    Transition(S.RELEASED, S.DELIVERED, Who.ENGINEER_OR_QUALITY, label="Record delivery"),
    Transition(S.DRAFT, S.CANCELLED, Who.PRESCRIBER_OR_QUALITY, reason_required=True,
               label="Cancel"),
    Transition(S.SUBMITTED, S.CANCELLED, Who.PRESCRIBER_OR_QUALITY, reason_required=True,
               label="Cancel"),
    # Quality may cancel any time before release.
    *(Transition(source, S.CANCELLED, Who.QUALITY, reason_required=True, label="Cancel")
      for source in (S.ACCEPTED, S.CHANGES_REQUESTED, S.IN_DESIGN, S.VERIFIED,
                     S.AWAITING_APPROVAL, S.APPROVED)),
)


@dataclass(frozen=True)
class ActorFacts:
    """What the workflow needs to know about the actor and the case."""

    roles: frozenset[str]
    is_prescriber: bool
    verified_by_actor: bool = False  # this actor signed the case's "verified" signature
    latest_iteration_passed: bool | None = None  # None: no verified iteration exists
    # Custom-made and adaptable devices: prescribed characteristics of the latest iteration
    # that the engineer has not confirmed as met yet (labels).
    unconfirmed_characteristics: tuple[str, ...] = ()


class TransitionRefused(Exception):
    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def allowed_from(source: CaseStatus) -> list[Transition]:
    return [t for t in TRANSITIONS if t.source == source and t.who is not Who.SYSTEM]


def find_transition(source: CaseStatus, target: CaseStatus, facts: ActorFacts) -> Transition:
    """The transition ``source → target`` that ``facts`` may take, or :class:`TransitionRefused`.

    409 when the state does not allow it (the message names the state and what is allowed);
    403 when the state allows it but not for this actor.
    """
    candidates = [t for t in TRANSITIONS if t.source == source and t.target == target]
    if not candidates or all(t.who is Who.SYSTEM for t in candidates):
        options = ", ".join(sorted({t.target.value.replace("_", " ")
                                    for t in allowed_from(source)})) or "nothing"
        raise TransitionRefused(
            f"The case is {source.value.replace('_', ' ')}; it cannot move to "
            f"{target.value.replace('_', ' ')}. Allowed from here: {options}.")
    for transition in candidates:
        if _may(transition.who, facts):
            _check_rules(transition, facts)
            return transition
    raise TransitionRefused(
        f"Only {_who_text(candidates[0].who)} may move the case from "
        f"{source.value.replace('_', ' ')} to {target.value.replace('_', ' ')}.", status=403)


def _may(who: Who, facts: ActorFacts) -> bool:
    roles = facts.roles
    return {
        Who.PRESCRIBER: facts.is_prescriber and Role.CLINICIAN in roles,
        Who.ENGINEER: Role.ENGINEER in roles,
        Who.QUALITY: Role.QUALITY in roles,
        Who.ENGINEER_OR_QUALITY: bool({Role.ENGINEER, Role.QUALITY} & roles),
        Who.PRESCRIBER_OR_QUALITY: (facts.is_prescriber and Role.CLINICIAN in roles)
        or Role.QUALITY in roles,
        Who.SYSTEM: False,
    }[who]


def _check_rules(transition: Transition, facts: ActorFacts) -> None:
    if transition.target is S.VERIFIED and facts.latest_iteration_passed is not True:
        raise TransitionRefused(
            "The latest design iteration has not passed verification against its envelope; "
            "it cannot be signed as verified.")
    if transition.target is S.VERIFIED and facts.unconfirmed_characteristics:
        raise TransitionRefused(
            "Confirm, item by item, that the latest design iteration meets each prescribed "
            "characteristic before signing it as verified. Not confirmed yet: "
            + ", ".join(facts.unconfirmed_characteristics) + ".")
    if transition.target is S.RELEASED and facts.verified_by_actor:
        raise TransitionRefused(
            "You signed this design as verified; another quality user must release it "
            "(independent review).", status=403)


def _who_text(who: Who) -> str:
    return {
        Who.PRESCRIBER: "the prescribing clinician",
        Who.ENGINEER: "an engineer",
        Who.QUALITY: "a quality user",
        Who.ENGINEER_OR_QUALITY: "an engineer or a quality user",
        Who.PRESCRIBER_OR_QUALITY: "the prescribing clinician or a quality user",
        Who.SYSTEM: "the system",
    }[who]
