"""Retention of a case's records: deadlines, extension, legal holds and disposal (DOMAIN.md §5).

Contracts (every function takes the session, the store and the actor; flushes, never commits):

- **Record objects of a case** are its stored files (attachments, design iterations), the
  signed-record objects of its request/decision signatures and its verification reports. They are
  protected from creation with the deadline the policy gives at that moment
  (:func:`deadline_for_new_record`); every later event that moves the deadline **extends** all of
  them (:func:`protect_case`), never shortens. The envelope versions a case was verified against
  are extended with it (kept until the latest retain-until of any case that used them).
- **Kept for ever** (never disposed by the application): audit events, checkpoints, legal-hold
  and hold-release signature records (``holds/…``) and tombstones (``tombstones/…``).
- **Legal hold**: placed and released by quality with a reason and a signature; while any hold of
  the case is active every record object carries a legal hold in the store, and
  ``StoredFile.legal_hold`` says so exactly. A hold blocks disposal whatever the date.
- **Disposal** (:func:`start_disposal`, then :func:`run_disposal`): refused (409) before the
  deadline and under a hold. It first signs and writes the **tombstone** (every object to be
  destroyed: key, version id, SHA-256, size; who, when, why) and its ``disposal_item`` rows, and
  the caller commits; then deletes object by object, marking each row, the caller committing after
  each. If the store fails mid-way the tombstone stays *pending* and names what is still there;
  running the disposal again completes it.

Order against the store: extensions and holds are applied to the store first, then to the rows
(the store is never less protected than the database says, except after a hold *release* whose
transaction fails to commit: the objects are still under their retain-until; place the hold
again). The policy comes from the application (``PDM_RETENTION_POLICY``, see
:func:`current_policy`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from ..canonical import canonical_json, sha256_hex, utc_iso
from ..clock import utcnow
from ..errors import Conflict, DomainError, Forbidden, NotFound, ServiceUnavailable
from ..models import (
    Case,
    DisposalItem,
    EnvelopeVersion,
    FileState,
    LegalHold,
    Signature,
    SignatureMeaning,
    StoredFile,
    Tombstone,
    TombstoneState,
    User,
    VerificationReport,
)
from ..permissions import Role
from ..retention import DEFAULT_POLICY, CaseFacts, Decision, Policy
from ..retention import compute as compute_decision
from ..storage import ObjectNotFound, ObjectStore, RetentionViolation, StorageError
from ..storage import StorageUnavailable as StoreDown
from . import DbSession, free_text
from .audit import actor_label, record_event
from .signatures import check_password, sign, signed_document

# Signatures whose records are kept for ever (they document holds and disposal themselves).
KEPT_MEANINGS = (SignatureMeaning.LEGAL_HOLD, SignatureMeaning.HOLD_RELEASED,
                 SignatureMeaning.DISPOSAL)


def current_policy() -> Policy:
    """The application's retention policy (loaded once by ``create_app``).

    Outside an application (pure scripts) the built-in default. A broken policy file refuses
    every action that needs it (503) rather than guessing.
    """
    from flask import current_app, has_app_context

    if not has_app_context():
        return DEFAULT_POLICY
    if "pdm_retention_policy" not in current_app.extensions:
        return DEFAULT_POLICY
    policy = current_app.extensions["pdm_retention_policy"]
    if policy is None:
        raise ServiceUnavailable("The retention policy (PDM_RETENTION_POLICY) is broken; nothing "
                                 "was changed. `flask --app app pdm doctor` names the problem.")
    return policy


def _ceil_second(moment: datetime) -> datetime:
    """S3 keeps retain-until in whole seconds (rounded up): retention ends at that second."""
    return moment.replace(microsecond=0) + timedelta(seconds=1) if moment.microsecond else moment


def _store_error(exc: StorageError, what: str) -> DomainError:
    if isinstance(exc, StoreDown):
        return ServiceUnavailable(f"The record store is unavailable; {what}. Try again later.")
    return Conflict(f"The record store refused: {exc}; {what}.")


# -- what a case holds ---------------------------------------------------------------------------
@dataclass
class RecordObject:
    kind: str  # stored_file | signature | report | envelope
    source_id: int
    key: str
    version_id: str | None
    sha256: str
    size: int
    row: StoredFile | None = None


def _signature_object(signature: Signature, kind: str = "signature") -> RecordObject:
    body = signed_document(signature)
    return RecordObject(kind, signature.id, signature.record_key, signature.record_version_id,
                        sha256_hex(body), len(body))


def case_objects(session: DbSession, case: Case) -> list[RecordObject]:
    """Every disposable object of ``case`` still in the store (kept-for-ever records excluded)."""
    objects = [RecordObject("stored_file", f.id, f.key, f.version_id, f.sha256, f.size, f)
               for f in session.scalars(sa.select(StoredFile).where(
                   StoredFile.case_id == case.id, StoredFile.state != FileState.DISPOSED)
                   .order_by(StoredFile.id))]
    objects += [_signature_object(s) for s in session.scalars(sa.select(Signature).where(
        Signature.case_id == case.id, Signature.meaning.not_in(KEPT_MEANINGS),
        Signature.record_key != "").order_by(Signature.id))]
    for report in session.scalars(sa.select(VerificationReport).where(
            VerificationReport.case_id == case.id, VerificationReport.record_key != "")
            .order_by(VerificationReport.id)):
        objects.append(RecordObject("report", report.id, report.record_key,
                                    report.record_version_id, report.report_sha256,
                                    len(canonical_json(report.report))))
    return objects


def envelope_objects(session: DbSession, case: Case) -> list[RecordObject]:
    """The signed envelope versions the case's designs were verified against."""
    ids = sa.select(VerificationReport.envelope_version_id).where(
        VerificationReport.case_id == case.id)
    signatures = session.scalars(sa.select(Signature).join(
        EnvelopeVersion, EnvelopeVersion.signature_id == Signature.id).where(
        EnvelopeVersion.id.in_(ids)).order_by(Signature.id))
    return [_signature_object(s, "envelope") for s in signatures]


def case_events(session: DbSession, case: Case, now: datetime | None = None
                ) -> dict[str, datetime | None]:
    """The stored event dates the clocks run from. ``signed`` is the latest record of the case
    (signature, frozen file, verification report); ``now`` counts as one (a record being made)."""
    candidates = [
        session.scalar(sa.select(sa.func.max(Signature.signed_at)).where(
            Signature.case_id == case.id, Signature.meaning.not_in(KEPT_MEANINGS))),
        session.scalar(sa.select(sa.func.max(StoredFile.created_at)).where(
            StoredFile.case_id == case.id, StoredFile.state == FileState.RECORD)),
        session.scalar(sa.select(sa.func.max(VerificationReport.created_at)).where(
            VerificationReport.case_id == case.id)),
        now,
    ]
    present = [c if c.tzinfo else c.replace(tzinfo=UTC) for c in candidates if c is not None]
    delivered = (datetime.combine(case.delivered_on, time(), UTC) if case.delivered_on
                 else None)
    return {"signed": max(present) if present else None, "released": case.released_at,
            "delivered": delivered}


def decide(session: DbSession, case: Case, *, policy: Policy | None = None,
           now: datetime | None = None) -> Decision:
    """The policy applied to the case's stored events (plus ``now`` as a new record)."""
    device = case.device_type
    facts = CaseFacts(implantable=device.implantable, category=device.category.value,
                      lifetime_years=device.expected_lifetime_years,
                      events=case_events(session, case, now))
    return compute_decision(policy or current_policy(), facts)


def deadline_for_new_record(session: DbSession, case: Case, *, now: datetime,
                            policy: Policy | None = None) -> datetime:
    """Retain-until for a record object created now: the policy's deadline counting this
    record, and never earlier than the case's current deadline."""
    until = decide(session, case, policy=policy, now=now).retain_until
    if until is None:  # ``now`` is a signed event: every class has a deadline
        raise ValueError(f"case {case.number}: the retention policy gives no deadline")
    return max(until, case.retain_until) if case.retain_until else until


def active_holds(session: DbSession, case: Case) -> list[LegalHold]:
    return list(session.scalars(sa.select(LegalHold).where(
        LegalHold.case_id == case.id, LegalHold.released_at.is_(None)).order_by(LegalHold.id)))


def tombstone_of(session: DbSession, case: Case) -> Tombstone | None:
    return session.scalar(sa.select(Tombstone).where(Tombstone.case_id == case.id))


# -- extension -----------------------------------------------------------------------------------
def protect_case(
    session: DbSession, store: ObjectStore, *, actor: User | None, case: Case, cause: str,
    policy: Policy | None = None,
) -> Decision:
    """Bring every record object of ``case`` up to the policy's deadline from the stored events.

    Extends (never shortens) in the store first, then ``StoredFile.retain_until`` and
    ``Case.retain_until``, with a ``retention.extended`` audit event when the deadline moved.
    Objects of a case under legal hold get the hold too (e.g. records signed after the hold).
    """
    session.flush()
    decision = decide(session, case, policy=policy)
    target = decision.retain_until
    if target is None:
        return decision
    before = case.retain_until
    if before is not None and before >= target:
        target = before  # never shorten: a policy change or a correction only ever extends
    moved = before is None or target > before
    held = bool(active_holds(session, case))
    extended = 0
    missing: list[str] = []
    try:
        for obj in case_objects(session, case):
            if obj.row is not None:
                try:
                    if obj.row.state is FileState.RECORD and obj.row.retain_until < target:
                        store.extend_retention(obj.key, version_id=obj.version_id,
                                               retain_until=target)
                        obj.row.retain_until = target
                        extended += 1
                    if held and not obj.row.legal_hold:
                        store.set_legal_hold(obj.key, version_id=obj.version_id, on=True)
                        obj.row.legal_hold = True
                except ObjectNotFound:
                    missing.append(obj.key)  # reconciliation marks the row damaged
                continue
            if moved or held:
                extended += _extend_by_head(store, obj, target, hold=held, missing=missing)
        if moved:
            for obj in envelope_objects(session, case):
                extended += _extend_by_head(store, obj, target, hold=False, missing=missing)
    except StorageError as exc:
        raise _store_error(exc, "the retention was not changed") from exc
    if moved:
        case.retain_until = target
        record_event(session, actor=actor, action="retention.extended", target_type="case",
                     target_id=case.id, case_id=case.id,
                     before={"retain_until": before},
                     after={"retain_until": target, "cause": cause,
                            "regime": decision.deciding.regime if decision.deciding else None,
                            "explanation": decision.explain(), "objects_extended": extended,
                            "objects_missing": missing})
    session.flush()
    return decision


def _extend_by_head(store: ObjectStore, obj: RecordObject, target: datetime, *, hold: bool,
                    missing: list[str]) -> int:
    """Extend (and hold) an object that has no row of its own. A missing object cannot be
    protected: it is named in the audit event (reconciliation marks it damaged) and the other
    objects are still extended."""
    try:
        info = store.head(obj.key, version_id=obj.version_id)
    except ObjectNotFound:
        missing.append(obj.key)
        return 0
    changed = 0
    if info.retain_until is None or info.retain_until < target:
        store.extend_retention(obj.key, version_id=obj.version_id, retain_until=target)
        changed = 1
    if hold and not info.legal_hold:
        store.set_legal_hold(obj.key, version_id=obj.version_id, on=True)
    return changed


def _keep_for_ever_until(case: Case, now: datetime, policy: Policy | None = None) -> datetime:
    """Lock of records the application never disposes (hold records, tombstones): the longest
    period of the policy from now, and not before the case's own deadline. (The application
    has no path that deletes them; the lock adds the store's protection on top.)"""
    periods = [p for r in (policy or current_policy()).regimes
               for p in (r.implantable, r.other, r.minimum) if p is not None]
    floor = max(p.after(now) for p in periods)
    return max(floor, case.retain_until) if case.retain_until else floor


# -- legal hold ----------------------------------------------------------------------------------
def _require_quality(actor: User, what: str) -> None:
    if Role.QUALITY not in actor.role_names:
        raise Forbidden(f"Only quality users {what}.")


def _reason(reason: str, field: str = "reason") -> str:
    text = free_text(reason, field, 2000)
    if not text:
        from ..errors import ValidationError

        raise ValidationError("Give a reason.", {field: ["A reason is required."]})
    return text


def place_hold(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, reason: str,
    password: str | None, totp_code: str | None = None, now: datetime | None = None,
) -> LegalHold:
    """Place a legal hold (signed): every record object of the case is held in the store."""
    _require_quality(actor, "place legal holds")
    reason = _reason(reason)
    verified = check_password(actor, password, totp_code)  # once: codes are single-use
    now = now or utcnow()
    tomb = tombstone_of(session, case)
    if tomb is not None:
        raise Conflict(f"{case.number} was disposed on {tomb.created_at.date().isoformat()}; "
                       "there is nothing left to hold.")
    hold = LegalHold(case_id=case.id, reason=reason, placed_by_id=actor.id,
                     placed_by_label=actor_label(actor), placed_at=now)
    session.add(hold)
    session.flush()
    signature = sign(session, store, actor=actor, password=None, verified=verified,
                     meaning=SignatureMeaning.LEGAL_HOLD, target_type="legal_hold",
                     target_id=hold.id, content={
                         "record_type": "legal_hold", "case_number": case.number,
                         "hold_id": hold.id, "reason": reason, "placed_at": utc_iso(now)},
                     record_key_prefix=f"holds/{case.number}",
                     retain_until=_keep_for_ever_until(case, now), case_id=case.id, now=now)
    hold.placed_signature_id = signature.id
    _apply_hold(session, store, case, on=True)
    record_event(session, actor=actor, action="legal_hold.placed", target_type="legal_hold",
                 target_id=hold.id, case_id=case.id,
                 after={"reason": reason, "signature_id": signature.id})
    session.flush()
    return hold


def release_hold(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, hold_id: int,
    reason: str, password: str | None, totp_code: str | None = None,
    now: datetime | None = None,
) -> LegalHold:
    """Release one hold (signed); the store's holds come off when no other hold remains."""
    _require_quality(actor, "release legal holds")
    reason = _reason(reason)
    hold = session.get(LegalHold, hold_id) if 0 < hold_id < 2**31 else None
    if hold is None or hold.case_id != case.id:
        raise NotFound("No such legal hold on this case.")
    if not hold.active:
        raise Conflict(f"That hold was released on {hold.released_at:%Y-%m-%d} by "
                       f"{hold.released_by_label}.")
    verified = check_password(actor, password, totp_code)  # once: codes are single-use
    now = now or utcnow()
    signature = sign(session, store, actor=actor, password=None, verified=verified,
                     meaning=SignatureMeaning.HOLD_RELEASED, target_type="legal_hold",
                     target_id=hold.id, content={
                         "record_type": "legal_hold_release", "case_number": case.number,
                         "hold_id": hold.id, "placed_reason": hold.reason,
                         "release_reason": reason, "released_at": utc_iso(now)},
                     record_key_prefix=f"holds/{case.number}",
                     retain_until=_keep_for_ever_until(case, now), case_id=case.id, now=now)
    hold.released_at, hold.released_by_id = now, actor.id
    hold.released_by_label, hold.release_reason = actor_label(actor), reason
    hold.released_signature_id = signature.id
    session.flush()
    remaining = active_holds(session, case)
    if not remaining:
        _apply_hold(session, store, case, on=False)
    record_event(session, actor=actor, action="legal_hold.released", target_type="legal_hold",
                 target_id=hold.id, case_id=case.id, before={"reason": hold.reason},
                 after={"release_reason": reason, "signature_id": signature.id,
                        "other_active_holds": [h.id for h in remaining]})
    session.flush()
    return hold


def _apply_hold(session: DbSession, store: ObjectStore, case: Case, *, on: bool) -> None:
    try:
        for obj in case_objects(session, case):
            if obj.row is not None and obj.row.legal_hold == on:
                continue
            # A missing object has nothing to hold; reconciliation reports it.
            with contextlib.suppress(ObjectNotFound):
                store.set_legal_hold(obj.key, version_id=obj.version_id, on=on)
            if obj.row is not None:
                obj.row.legal_hold = on
    except StorageError as exc:
        raise _store_error(exc, "the hold was not changed") from exc
    session.flush()


# -- disposal ------------------------------------------------------------------------------------
def eligible_query(now: datetime) -> sa.Select[tuple[Case]]:
    """Cases whose retention has ended, with no active hold and not yet completely disposed."""
    return sa.select(Case).where(
        Case.retain_until.is_not(None), Case.retain_until <= now,
        ~sa.exists().where(LegalHold.case_id == Case.id, LegalHold.released_at.is_(None)),
        ~sa.exists().where(Tombstone.case_id == Case.id,
                           Tombstone.state == TombstoneState.COMPLETE),
        ~sa.exists().where(StoredFile.case_id == Case.id, StoredFile.state != FileState.DISPOSED,
                           StoredFile.retain_until > now),
    ).order_by(Case.retain_until, Case.id)


def _latest_file_lock(session: DbSession, case: Case) -> datetime | None:
    """The latest retain-until of the case's stored files (a draft upload keeps its own floor)."""
    return session.scalar(sa.select(sa.func.max(StoredFile.retain_until)).where(
        StoredFile.case_id == case.id, StoredFile.state != FileState.DISPOSED))


def disposal_refusal(session: DbSession, case: Case, now: datetime,
                     policy: Policy | None = None) -> str | None:
    """Why ``case`` may not be disposed now (None: it may)."""
    tomb = tombstone_of(session, case)
    if tomb is not None and tomb.state is TombstoneState.COMPLETE:
        return f"{case.number} was disposed on {tomb.completed_at or tomb.created_at:%Y-%m-%d}."
    holds = active_holds(session, case)
    if holds:
        hold = holds[0]
        return (f"{case.number} is under legal hold since {hold.placed_at:%Y-%m-%d} "
                f"({hold.reason}); disposal is refused whatever the date.")
    if tomb is not None:
        return None  # a pending disposal was signed after these checks: it may be completed
    decision = decide(session, case, policy=policy)
    candidates = [d for d in (case.retain_until, decision.retain_until, _latest_file_lock(
        session, case)) if d is not None]
    until = max(candidates) if candidates else None
    if until is None:
        return f"{case.number} has no signed records; there is nothing to dispose."
    if now < _ceil_second(until):
        return (f"{case.number} is retained until {utc_iso(until)} ({decision.explain()}); "
                "disposal before then is refused.")
    return None


def start_disposal(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, reason: str,
    password: str | None, totp_code: str | None = None, now: datetime | None = None,
    policy: Policy | None = None,
) -> Tombstone:
    """Check, sign and write the tombstone listing every object to destroy (nothing deleted yet).

    A pending tombstone (an interrupted disposal) is returned as it is, to be completed.
    """
    _require_quality(actor, "dispose of records")
    reason = _reason(reason)
    now = now or utcnow()
    refusal = disposal_refusal(session, case, now, policy)
    if refusal:
        raise Conflict(refusal)
    verified = check_password(actor, password, totp_code)  # once: codes are single-use
    existing = tombstone_of(session, case)
    if existing is not None:
        record_event(session, actor=actor, action="disposal.resumed", target_type="tombstone",
                     target_id=existing.id, case_id=case.id,
                     after={"remaining": sum(1 for i in existing.items if i.deleted_at is None)})
        return existing
    decision = decide(session, case, policy=policy)
    until = max(d for d in (case.retain_until, decision.retain_until,
                            _latest_file_lock(session, case)) if d is not None)
    objects = case_objects(session, case)
    tomb = Tombstone(case_id=case.id, state=TombstoneState.PENDING, reason=reason,
                     retain_until=until, regime=decision.explain()[:200],
                     disposed_by_id=actor.id, disposed_by_label=actor_label(actor),
                     created_at=now)
    session.add(tomb)
    session.flush()
    for obj in objects:
        session.add(DisposalItem(tombstone_id=tomb.id, kind=obj.kind, source_id=obj.source_id,
                                 key=obj.key, version_id=obj.version_id, sha256=obj.sha256,
                                 size=obj.size))
    session.flush()
    content = tombstone_record(case, tomb, objects, decision, actor, now)
    signature = sign(session, store, actor=actor, password=None, verified=verified,
                     meaning=SignatureMeaning.DISPOSAL, target_type="tombstone",
                     target_id=tomb.id, content=content,
                     record_key_prefix=f"tombstones/{case.number}",
                     retain_until=_keep_for_ever_until(case, now), case_id=case.id, now=now)
    tomb.signature_id = signature.id
    tomb.record_key, tomb.record_version_id = signature.record_key, signature.record_version_id
    record_event(session, actor=actor, action="disposal.started", target_type="tombstone",
                 target_id=tomb.id, case_id=case.id,
                 after={"reason": reason, "objects": len(objects),
                        "bytes": sum(o.size for o in objects), "record_key": tomb.record_key,
                        "signature_id": signature.id})
    session.flush()
    session.refresh(tomb)
    return tomb


def tombstone_record(case: Case, tomb: Tombstone, objects: list[RecordObject],
                     decision: Decision, actor: User, now: datetime) -> dict[str, Any]:
    """The canonical content of a tombstone: what is destroyed, why, by whom, under which rule."""
    return {
        "record_type": "tombstone", "tombstone_id": tomb.id, "case_number": case.number,
        "device_type": case.device_type.name, "retention_class": decision.retention_class,
        "retain_until": utc_iso(tomb.retain_until), "regime": tomb.regime,
        "reason": tomb.reason, "disposed_by": {"printed_name": actor.printed_name,
                                               "email": actor.email},
        "disposed_at": utc_iso(now),
        "objects": [{"kind": o.kind, "source_id": o.source_id, "key": o.key,
                     "version_id": o.version_id, "sha256": o.sha256, "size": o.size}
                    for o in objects],
        "kept": "audit events, checkpoints, legal-hold records and this tombstone",
    }


def run_disposal(
    session: DbSession, store: ObjectStore, *, actor: User, tombstone: Tombstone,
    now: datetime | None = None,
) -> Iterator[DisposalItem]:
    """Delete the tombstone's remaining objects by version, one at a time.

    Yields after each object is deleted and its row marked (the caller commits then, so an
    interruption keeps what was done). When every item is done the tombstone is completed (the
    caller commits once more after the loop). A store failure raises a 503/409 that names the
    object and what remains; the tombstone stays pending and a re-run completes it. An object
    already gone (deleted by an earlier run whose commit was lost) is recorded as ``absent``.
    """
    now = now or utcnow()
    items = [i for i in tombstone.items if i.deleted_at is None]
    total, done = len(tombstone.items), len(tombstone.items) - len(items)
    for item in items:
        try:
            store.delete(item.key, version_id=item.version_id, now=now)
            item.outcome = "deleted"
        except ObjectNotFound:
            item.outcome = "absent"
        except (RetentionViolation, StorageError) as exc:
            raise _store_error(exc, (
                f"disposal of case {tombstone.case_id} stopped at {item.key} "
                f"({done} of {total} objects deleted and recorded; the tombstone stays pending: "
                "run the disposal again to complete it)")) from exc
        item.deleted_at = now
        if item.kind == "stored_file":
            row = session.get(StoredFile, item.source_id)
            if row is not None:
                row.state, row.legal_hold = FileState.DISPOSED, False
        done += 1
        session.flush()
        yield item
    tombstone.state, tombstone.completed_at = TombstoneState.COMPLETE, now
    previews = _remove_previews(session, tombstone.case_id)
    record_event(session, actor=actor, action="case.disposed", target_type="case",
                 target_id=tombstone.case_id, case_id=tombstone.case_id,
                 after={"tombstone_id": tombstone.id, "objects": total,
                        "previews_removed": previews,
                        "absent": sum(1 for i in tombstone.items if i.outcome == "absent"),
                        "record_key": tombstone.record_key})
    session.flush()


def _remove_previews(session: DbSession, case_id: int) -> int:
    """Delete the cached 3D previews of the case's designs: derived copies of the patient's
    geometry must not outlive the records they were made from."""
    from ..models import DesignIteration, DesignPreview

    iterations = sa.select(DesignIteration.id).where(DesignIteration.case_id == case_id)
    result = session.execute(sa.delete(DesignPreview).where(
        DesignPreview.iteration_id.in_(iterations)))
    return int(getattr(result, "rowcount", 0) or 0)


def record_interruption(session: DbSession, *, actor: User, tombstone_id: int,
                        message: str) -> None:
    """Audit a disposal that stopped (called by the CLI/view after rolling back the failed step)."""
    tomb = session.get(Tombstone, tombstone_id)
    if tomb is None:
        return
    record_event(session, actor=actor, action="disposal.interrupted", target_type="tombstone",
                 target_id=tomb.id, case_id=tomb.case_id,
                 after={"message": message[:1000],
                        "remaining": sum(1 for i in tomb.items if i.deleted_at is None)})
    session.flush()


# -- visibility ----------------------------------------------------------------------------------
def expiring_query(now: datetime, within_days: int) -> sa.Select[tuple[Case]]:
    return sa.select(Case).where(
        Case.retain_until.is_not(None), Case.retain_until > now,
        Case.retain_until <= now + timedelta(days=within_days),
    ).order_by(Case.retain_until, Case.id)


def holds_query(*, active_only: bool = True) -> sa.Select[tuple[LegalHold]]:
    query = sa.select(LegalHold).order_by(LegalHold.placed_at.desc(), LegalHold.id.desc())
    return query.where(LegalHold.released_at.is_(None)) if active_only else query


def case_row(case: Case, now: datetime) -> dict[str, Any]:
    return {"id": case.id, "number": case.number, "status": case.status.value,
            "device_type": case.device_type.name,
            "retention_class": "implantable" if case.device_type.implantable else "other",
            "retain_until": utc_iso(case.retain_until) if case.retain_until else None,
            "days_left": (case.retain_until - now).days if case.retain_until else None}


def hold_row(hold: LegalHold, case: Case | None = None) -> dict[str, Any]:
    return {"id": hold.id, "case_id": hold.case_id, "case_number": case.number if case else None,
            "reason": hold.reason, "placed_by": hold.placed_by_label,
            "placed_at": utc_iso(hold.placed_at), "active": hold.active,
            "released_by": hold.released_by_label,
            "released_at": utc_iso(hold.released_at) if hold.released_at else None,
            "release_reason": hold.release_reason}


def retention_report(session: DbSession, *, now: datetime, within_days: int,
                     policy: Policy | None = None) -> dict[str, Any]:
    """Upcoming expiries, cases eligible for disposal and active holds (for quality)."""
    policy = policy or current_policy()
    holds = list(session.scalars(holds_query()))
    cases = {c.id: c for c in session.scalars(sa.select(Case).where(
        Case.id.in_([h.case_id for h in holds])))} if holds else {}
    return {
        "generated_at": utc_iso(now), "within_days": within_days,
        "policy": policy.describe(),
        "expiring": [case_row(c, now) for c in session.scalars(expiring_query(now, within_days))],
        "eligible_for_disposal": [case_row(c, now) for c in session.scalars(eligible_query(now))],
        "holds": [hold_row(h, cases.get(h.case_id)) for h in holds],
    }


def case_retention(session: DbSession, case: Case, store: ObjectStore | None = None, *,
                   now: datetime | None = None, head_limit: int = 20) -> dict[str, Any]:
    """What the case page shows: class, regimes, retain-until and who set it, holds, disposal,
    and the lock state the store reports for (up to ``head_limit``) record objects."""
    now = now or utcnow()
    try:
        decision: Decision | None = decide(session, case)
        policy_problem = None
    except ServiceUnavailable as exc:
        decision, policy_problem = None, exc.message
    tomb = tombstone_of(session, case)
    holds = list(session.scalars(sa.select(LegalHold).where(LegalHold.case_id == case.id)
                                 .order_by(LegalHold.id)))
    result: dict[str, Any] = {
        "retention_class": "implantable" if case.device_type.implantable else "other",
        "retain_until": utc_iso(case.retain_until) if case.retain_until else None,
        "explanation": decision.explain() if decision else policy_problem,
        "regimes": [{"regime": d.regime, "title": d.title, "source": d.source,
                     "clock_event": d.clock_event, "start": utc_iso(d.start),
                     "period": d.period, "until": utc_iso(d.until),
                     "deciding": decision is not None and decision.deciding is d}
                    for d in (decision.deadlines if decision else ())],
        "not_applied": list(decision.not_applied) if decision else [],
        "holds": [hold_row(h) for h in holds],
        "on_hold": any(h.active for h in holds),
        "disposal": None if tomb is None else {
            "state": tomb.state.value, "reason": tomb.reason, "by": tomb.disposed_by_label,
            "at": utc_iso(tomb.created_at), "record_key": tomb.record_key,
            "objects": len(tomb.items),
            "remaining": sum(1 for i in tomb.items if i.deleted_at is None)},
        "disposal_refusal": disposal_refusal(session, case, now) if decision else policy_problem,
        "storage": None,
    }
    if store is not None and (tomb is None or tomb.state is TombstoneState.PENDING):
        result["storage"] = storage_lock_state(store, case_objects(session, case), head_limit,
                                               case.retain_until)
    return result


def storage_lock_state(store: ObjectStore, objects: list[RecordObject], head_limit: int,
                       expected: datetime | None) -> dict[str, Any]:
    """Ask the store itself (``head``) about the first ``head_limit`` record objects."""
    checked, modes, held, earliest, problems = 0, set(), 0, None, []
    for obj in objects[:head_limit]:
        try:
            info = store.head(obj.key, version_id=obj.version_id)
        except StorageError as exc:
            problems.append(f"{obj.key}: {exc}")
            continue
        checked += 1
        modes.add(info.lock_mode or "none")
        held += int(info.legal_hold)
        if info.retain_until is not None:
            earliest = info.retain_until if earliest is None else min(earliest, info.retain_until)
        if obj.row is not None and obj.row.state is FileState.RECORD and (
                info.retain_until is None or info.retain_until < obj.row.retain_until):
            problems.append(f"{obj.key}: the store keeps it only until "
                            f"{utc_iso(info.retain_until) if info.retain_until else 'never'}")
    return {"objects": len(objects), "checked": checked, "lock_modes": sorted(modes),
            "legal_holds": held,
            "earliest_retain_until": utc_iso(earliest) if earliest else None,
            "problems": problems, "backend": store.name}
