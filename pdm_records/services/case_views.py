"""Read models of a case for the case page and the API (queries only, no changes)."""

from __future__ import annotations

import io
from typing import Any

import sqlalchemy as sa

from ..errors import Conflict, NotFound
from ..models import Attachment, Case, CaseStatus, FileState, Signature, User
from ..storage import ObjectStore
from ..workflow import allowed_from
from . import DbSession
from .audit import record_read_event
from .confirmations import confirmation_required, confirmation_view
from .requests import current_parts, facts_for, signed_parts
from .signatures import verify_signature


def signatures_of(session: DbSession, case: Case) -> list[Signature]:
    return list(session.scalars(sa.select(Signature).where(Signature.case_id == case.id)
                                .order_by(Signature.id)))


def signature_status(
    case: Case, signature: Signature, session: DbSession, store: ObjectStore | None = None
) -> str:
    """'valid' or why not: the kept copy, the binding, the record today, the stored object."""
    check = verify_signature(signature, current=current_parts(session, case, signature),
                             signed=signed_parts(signature.signed_record), store=store)
    return "valid" if check.valid else f"broken: {check.reason}"


def manifestation_text(signature: Signature) -> str:
    """Part 11 §11.50: printed name, date and time, meaning."""
    return (f"{signature.printed_name} — {signature.meaning.value} — "
            f"{signature.signed_at.strftime('%Y-%m-%d %H:%M:%S UTC')}")


def case_detail(
    session: DbSession, actor: User, case: Case, store: ObjectStore | None = None
) -> dict[str, Any]:
    from .retention import case_retention, tombstone_of

    session.refresh(case)
    sigs = signatures_of(session, case)
    retention = case_retention(session, case, store)
    disposed = tombstone_of(session, case) is not None  # complete, or signed and under way
    if disposed:
        store = None  # disposed: the signed objects are gone by design; the rows still verify
    facts = facts_for(session, actor, case)
    actions = []
    from ..workflow import TransitionRefused, find_transition

    for step in [] if disposed else allowed_from(case.status):
        try:
            find_transition(case.status, step.target, facts)
        except TransitionRefused:
            continue
        actions.append({"to": step.target.value, "label": step.label,
                        "signature": step.signature.value if step.signature else None,
                        "reason_required": step.reason_required})
    return {
        "id": case.id,
        "number": case.number,
        "status": case.status.value,
        "patient_code": case.patient.code,
        "device_type": {"id": case.device_type.id, "name": case.device_type.name,
                        "category": case.device_type.category.value,
                        "implantable": case.device_type.implantable,
                        "parameters": case.device_type.parameters},
        "institution": case.institution.name,
        "assigned_engineer_id": case.assigned_engineer_id,
        "prescriber": {"id": case.prescriber.id, "printed_name": case.prescriber.printed_name,
                       "registration_number": case.prescriber.registration_number},
        "created_at": case.created_at.isoformat(),
        "delivered_on": case.delivered_on.isoformat() if case.delivered_on else None,
        "revisions": [{
            "id": r.id, "revision": r.revision, "status": r.status.value,
            "content": r.content, "content_sha256": r.content_sha256,
            "created_by": r.created_by.printed_name, "created_at": r.created_at.isoformat(),
            "attachments": [{
                "id": a.id, "kind": a.kind.value, "units": a.units,
                "original_name": a.file.original_name, "media_type": a.file.media_type,
                "size": a.file.size, "sha256": a.file.sha256, "state": a.file.state.value,
                "retain_until": a.file.retain_until.isoformat(),
            } for a in r.live_attachments],
        } for r in case.revisions],
        "signatures": [{
            "id": s.id, "meaning": s.meaning.value, "printed_name": s.printed_name,
            "signed_at": s.signed_at.isoformat(), "target_type": s.target_type,
            "target_id": s.target_id, "content_sha256": s.content_sha256,
            "manifestation": manifestation_text(s),
            "status": signature_status(case, s, session, store),
        } for s in sigs],
        "history": [{
            "from": t.from_status.value if t.from_status else None, "to": t.to_status.value,
            "by": t.actor_label, "at": t.occurred_at.isoformat(), "reason": t.reason,
            "signature_id": t.signature_id,
        } for t in case.transitions],
        "design_iterations": [{
            "id": i.id, "number": i.number, "units": i.units, "notes": i.notes,
            "based_on_revision": next((r.revision for r in case.revisions
                                       if r.id == i.based_on_revision_id), None),
            "original_name": i.file.original_name, "sha256": i.file.sha256,
            "size": i.file.size, "created_at": i.created_at.isoformat(),
            "verification": _report(session, i),
        } for i in case.iterations],
        "comments": [{"id": c.id, "author": c.author.printed_name, "body": c.body,
                      "created_at": c.created_at.isoformat()} for c in case.comments],
        "characteristic_confirmations": confirmation_view(session, case),
        # A disposed case takes no further changes (services.requests.refuse_if_disposed).
        "takes_changes": not disposed,
        "can_confirm": not disposed and case.status is CaseStatus.IN_DESIGN
        and bool(case.iterations) and "engineer" in actor.role_names
        and confirmation_required(case),
        "retention": retention,
        "allowed_actions": actions,
        "editable": not disposed
        and case.status in (CaseStatus.DRAFT, CaseStatus.CHANGES_REQUESTED)
        and case.prescriber_id == actor.id,
        "can_add_iteration": not disposed
        and case.status in (CaseStatus.ACCEPTED, CaseStatus.IN_DESIGN)
        and "engineer" in actor.role_names,
        "can_verify": not disposed and case.status is CaseStatus.IN_DESIGN
        and bool(case.iterations) and "engineer" in actor.role_names,
    }


def _report(session: DbSession, iteration: Any) -> dict[str, Any] | None:
    from .verification import latest_report, report_summary

    report = latest_report(session, iteration)
    return None if report is None else report_summary(report)


def attachment_download(
    session: DbSession, store: ObjectStore, case: Case, attachment_id: int, *, actor: User,
    remote_addr: str | None = None,
) -> tuple[io.BytesIO, str, str]:
    """Read an attachment (verified against its SHA-256) and record ``file.downloaded``.

    The event is flushed, not committed: the view commits it before it sends the bytes.
    """
    attachment = session.get(Attachment, attachment_id)
    if (attachment is None or attachment.removed_at is not None
            or attachment.revision_id not in {r.id for r in case.revisions}):
        raise NotFound("No such attachment on this case.")
    stored = attachment.file
    if stored.state is FileState.DISPOSED:
        raise Conflict(f"{stored.original_name} was disposed after its retention ended; the "
                       "case's tombstone records its SHA-256 and size.")
    buffer = io.BytesIO()
    store.copy_to(stored.key, buffer, version_id=stored.version_id, sha256=stored.sha256)
    buffer.seek(0)
    record_read_event(session, actor=actor, action="file.downloaded", target_type="stored_file",
                      target_id=stored.id, case_id=case.id, remote_addr=remote_addr, details={
                          "attachment_id": attachment.id, "key": stored.key,
                          "version_id": stored.version_id, "sha256": stored.sha256,
                          "size": stored.size, "original_name": stored.original_name})
    return buffer, stored.original_name, stored.media_type
