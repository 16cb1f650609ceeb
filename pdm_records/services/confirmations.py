"""Item-by-item confirmation of prescribed characteristics (custom-made and adaptable devices).

For a custom-made device the prescriber states the specific design characteristics (EU MDR
2017/745 Annex XIII §1; MDCG 2021-3 Q6–Q7; DOMAIN.md §2–§4); for an adaptable device the
requested configuration. The device type's envelope then only holds the manufacturing limits
(printability), so before the engineer signs a design *verified* they confirm, for the latest
design iteration, that each characteristic of the signed request revision is met. Patient-matched
devices are verified against their validated envelope instead and need no confirmation.

Contracts: the functions take the session and the actor, write rows and audit events in the
caller's transaction, flush, never commit. Confirmations are written once; a new design iteration
starts with none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..clock import utcnow
from ..errors import Conflict, Forbidden, NotFound, ValidationError
from ..models import (
    Case,
    CaseStatus,
    CharacteristicConfirmation,
    DesignIteration,
    DeviceCategory,
    RequestRevision,
    User,
)
from ..permissions import Role
from . import DbSession
from .audit import record_event

CONFIRMED_CATEGORIES = frozenset({DeviceCategory.CUSTOM_MADE, DeviceCategory.ADAPTABLE})
# Request fields that state characteristics, per category, in the order they are shown.
TEXT_ITEMS: dict[DeviceCategory, tuple[tuple[str, str], ...]] = {
    DeviceCategory.CUSTOM_MADE: (("material", "Material"), ("fixation", "Fixation"),
                                 ("design_characteristics", "Design characteristics")),
    DeviceCategory.ADAPTABLE: (("configuration", "Configuration"),),
}
PARAMETER_FIELD = "design_parameters"


@dataclass(frozen=True)
class Characteristic:
    """One prescribed characteristic: its key in the request, a label, and the value."""

    item: str
    label: str
    prescribed: Any
    unit: str = ""

    @property
    def prescribed_text(self) -> str:
        value = self.prescribed
        text = f"{value:g}" if isinstance(value, float) else str(value)
        return f"{text} {self.unit}".strip()


def confirmation_required(case: Case) -> bool:
    return case.device_type.category in CONFIRMED_CATEGORIES


def prescribed_characteristics(case: Case, revision: RequestRevision) -> list[Characteristic]:
    """The characteristics ``revision`` prescribes, one per parameter and per stated text."""
    category = case.device_type.category
    if category not in CONFIRMED_CATEGORIES:
        return []
    content = revision.content
    units = {p["name"]: p.get("unit", "") for p in case.device_type.parameters}
    items = [Characteristic(f"{PARAMETER_FIELD}.{name}", name.replace("_", " "), value,
                            units.get(name, ""))
             for name, value in sorted((content.get(PARAMETER_FIELD) or {}).items())]
    for key, label in TEXT_ITEMS[category]:
        text = str(content.get(key) or "").strip()
        if text:
            items.append(Characteristic(key, label, text))
    return items


def _revision_of(session: DbSession, iteration: DesignIteration) -> RequestRevision:
    revision = session.get(RequestRevision, iteration.based_on_revision_id)
    if revision is None:  # the foreign key makes this impossible; never strip the check (-O)
        raise NotFound(f"request revision {iteration.based_on_revision_id} not found")
    return revision


def confirmations_of(session: DbSession, iteration: DesignIteration
                     ) -> dict[str, CharacteristicConfirmation]:
    return {row.item: row for row in session.scalars(
        sa.select(CharacteristicConfirmation).where(
            CharacteristicConfirmation.iteration_id == iteration.id)
        .order_by(CharacteristicConfirmation.id))}


def unconfirmed(session: DbSession, case: Case) -> tuple[str, ...]:
    """Labels of the latest iteration's characteristics not yet confirmed as met (empty when
    the device category needs no confirmation or there is no iteration yet)."""
    if not confirmation_required(case) or not case.iterations:
        return ()
    iteration = case.iterations[-1]
    done = confirmations_of(session, iteration)
    return tuple(c.label for c in prescribed_characteristics(case, _revision_of(session,
                                                                               iteration))
                 if c.item not in done or not done[c.item].met)


def confirmation_view(session: DbSession, case: Case) -> dict[str, Any] | None:
    """What the case page and the API show: the latest iteration's items and their state."""
    if not confirmation_required(case) or not case.iterations:
        return None
    iteration = case.iterations[-1]
    revision = _revision_of(session, iteration)
    done = confirmations_of(session, iteration)
    items = []
    for c in prescribed_characteristics(case, revision):
        row = done.get(c.item)
        items.append({"item": c.item, "label": c.label, "prescribed": c.prescribed,
                      "prescribed_text": c.prescribed_text,
                      "confirmation": None if row is None else {
                          "id": row.id, "met": row.met, "note": row.note,
                          "confirmed_by": row.confirmed_by.printed_name,
                          "confirmed_at": row.confirmed_at.isoformat()}})
    return {"iteration": iteration.number, "request_revision": revision.revision,
            "items": items, "complete": all(i["confirmation"] for i in items)}


def confirm(
    session: DbSession, *, actor: User, case: Case, number: int, items: list[dict[str, Any]],
    now: datetime | None = None,
) -> list[CharacteristicConfirmation]:
    """Record that each of ``items`` (``{"item", "met", "note"}``, already validated by
    ``CharacteristicConfirmationSchema``) is met by design iteration ``number``."""
    now = now or utcnow()
    if Role.ENGINEER not in actor.role_names:
        raise Forbidden("Only engineers confirm prescribed characteristics.")
    if not confirmation_required(case):
        raise Conflict(f"{case.device_type.name} is a "
                       f"{case.device_type.category.value.replace('_', '-')} device: it is "
                       "verified against its design envelope, with no item-by-item "
                       "confirmation.")
    if case.status is not CaseStatus.IN_DESIGN:
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; characteristics "
                       "are confirmed while the case is in design.")
    if not case.iterations or case.iterations[-1].number != number:
        latest = case.iterations[-1].number if case.iterations else None
        raise Conflict("Confirm the characteristics for the latest design iteration"
                       + (f" (#{latest})." if latest else "; there is none yet."))
    iteration = case.iterations[-1]
    revision = _revision_of(session, iteration)
    prescribed = {c.item: c for c in prescribed_characteristics(case, revision)}
    done = confirmations_of(session, iteration)
    errors: dict[str, list[str]] = {}
    for index, entry in enumerate(items):
        key = entry["item"]
        if key not in prescribed:
            # Keyed by position and without the sent text: an unknown item is not echoed.
            errors[f"items.{index}.item"] = [
                f"Not a characteristic prescribed in request revision {revision.revision}; "
                f"choose from: {', '.join(sorted(prescribed)) or 'none'}."]
        elif key in done:
            errors[f"items.{key}"] = [f"{prescribed[key].label} was already confirmed by "
                                      f"{done[key].confirmed_by.printed_name}."]
        elif not entry["met"]:
            errors[f"items.{key}"] = [f"{prescribed[key].label}: only a characteristic that "
                                      "is met can be confirmed; if it is not, upload a corrected "
                                      "design iteration."]
    if len({e["item"] for e in items}) != len(items):
        errors["items"] = ["Each characteristic can be confirmed once."]
    if errors:
        raise ValidationError("Some confirmations were not accepted; nothing was recorded.",
                              errors)
    rows = []
    for entry in items:
        spec = prescribed[entry["item"]]
        row = CharacteristicConfirmation(
            case_id=case.id, iteration_id=iteration.id, revision_id=revision.id,
            item=spec.item, prescribed=spec.prescribed, met=True, note=entry.get("note", ""),
            confirmed_by_id=actor.id, confirmed_at=now)
        session.add(row)
        rows.append(row)
    session.flush()
    record_event(session, actor=actor, action="design_iteration.characteristics_confirmed",
                 target_type="design_iteration", target_id=iteration.id, case_id=case.id,
                 after={"iteration": iteration.number, "request_revision": revision.revision,
                        "confirmations": [{"id": r.id, "item": r.item,
                                           "prescribed": r.prescribed, "met": r.met,
                                           "note": r.note} for r in rows]})
    return rows


def signed_confirmations(session: DbSession, case: Case) -> list[dict[str, Any]] | None:
    """The latest iteration's confirmations as a case decision's signature binds them
    (None when the category needs none)."""
    if not confirmation_required(case):
        return None
    if not case.iterations:
        return []
    return [confirmation_record(row)
            for row in confirmations_of(session, case.iterations[-1]).values()]


def confirmation_record(row: CharacteristicConfirmation) -> dict[str, Any]:
    return {"id": row.id, "iteration_id": row.iteration_id, "revision_id": row.revision_id,
            "item": row.item, "prescribed": row.prescribed, "met": row.met, "note": row.note,
            "confirmed_by": row.confirmed_by.printed_name,
            "confirmed_at": row.confirmed_at.isoformat()}
