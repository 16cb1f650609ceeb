"""The case dossier: everything about one case an inspector asks for, on one page
(DOMAIN.md §6; 21 CFR Part 11 §11.10(b) human-readable copies, §11.10(e) audit trail with
previous values, §11.50 manifestation of signatures; ISO 13485 §4.2.5).

Contract: :func:`open_dossier` finds the case by number among the cases ``actor`` may see,
writes the read event ``case.dossier_viewed`` in the caller's transaction (reads are audited,
issue #6 §3), runs the integrity check (``services/integrity.py``) and returns a plain read
model. The caller commits.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import NotFound
from ..models import AuditEvent, Case, EnvelopeVersion, StoredFile, User
from ..storage import ObjectStore
from . import DbSession
from .audit import record_read_event
from .integrity import CaseIntegrity, check_case, reports_of, signatures_of
from .requests import visible_cases

AUDIT_PAGE_SIZE = 100


def find_visible_case(session: DbSession, actor: User, number: str) -> Case:
    """The case numbered ``number`` if ``actor`` may see it; otherwise 404 (no existence leak)."""
    case = session.scalar(visible_cases(actor).where(Case.number == number.strip().upper()))
    if case is None:
        raise NotFound("There is no such case, or it is not yours to see.")
    return case


def open_dossier(
    session: DbSession, store: ObjectStore, *, actor: User, number: str, audit_page: int = 1,
    audit_per_page: int = AUDIT_PAGE_SIZE, remote_addr: str | None = None,
) -> dict[str, Any]:
    """Audit the read, then build the dossier of case ``number`` (see the module docstring)."""
    case = find_visible_case(session, actor, number)
    record_read_event(session, actor=actor, action="case.dossier_viewed", target_type="case",
                      target_id=case.id, case_id=case.id, remote_addr=remote_addr,
                      details={"number": case.number, "audit_page": audit_page})
    integrity = check_case(session, store, case)
    return dossier_view(session, case, integrity, audit_page=audit_page,
                        audit_per_page=audit_per_page)


def _file(stored: StoredFile) -> dict[str, Any]:
    return {"id": stored.id, "original_name": stored.original_name, "sha256": stored.sha256,
            "size": stored.size, "media_type": stored.media_type, "backend": stored.backend,
            "key": stored.key, "version_id": stored.version_id, "state": stored.state.value,
            "retain_until": stored.retain_until, "legal_hold": stored.legal_hold}


def _check(integrity: CaseIntegrity, kind: str, ref: int) -> dict[str, Any] | None:
    found = integrity.object(kind, ref)
    return None if found is None else {"ok": found.ok, "reason": found.reason}


def dossier_view(
    session: DbSession, case: Case, integrity: CaseIntegrity, *, audit_page: int = 1,
    audit_per_page: int = AUDIT_PAGE_SIZE,
) -> dict[str, Any]:
    signatures = signatures_of(session, case)
    reports = reports_of(session, case)
    envelopes = {e.id: e for e in session.scalars(sa.select(EnvelopeVersion).where(
        EnvelopeVersion.id.in_({r.envelope_version_id for r in reports})))} if reports else {}

    def signature_view(s: Any) -> dict[str, Any]:
        verdict = integrity.signature(s.id)
        return {"id": s.id, "meaning": s.meaning.value, "printed_name": s.printed_name,
                "signer_email": s.signer_email, "signed_at": s.signed_at,
                "target_type": s.target_type, "target_id": s.target_id,
                "content_sha256": s.content_sha256, "binding_sha256": s.binding_sha256,
                "record_key": s.record_key, "record_version_id": s.record_version_id,
                "valid": verdict.valid if verdict else False,
                "reasons": list(verdict.reasons) if verdict else ["not checked"]}

    revision_signatures: dict[int, list[dict[str, Any]]] = {}
    other_signatures = []
    for s in signatures:
        if s.target_type == "request_revision":
            revision_signatures.setdefault(s.target_id, []).append(signature_view(s))
        else:
            other_signatures.append(signature_view(s))
    revision_numbers = {r.id: r.revision for r in case.revisions}
    files = [a.file for r in case.revisions for a in r.attachments] + [
        i.file for i in case.iterations]
    return {
        "case": {
            "id": case.id, "number": case.number, "status": case.status.value,
            "patient_code": case.patient.code, "device_type": case.device_type.name,
            "category": case.device_type.category.value,
            "implantable": case.device_type.implantable, "institution": case.institution.name,
            "prescriber": case.prescriber.printed_name,
            "prescriber_registration": case.prescriber.registration_number,
            "created_at": case.created_at, "released_at": case.released_at,
            "delivered_on": case.delivered_on, "verification_result":
                case.verification_result.value},
        "integrity": {"ok": integrity.ok, "problems": integrity.problems},
        "revisions": [{
            "id": r.id, "revision": r.revision, "status": r.status.value,
            "created_by": r.created_by.printed_name, "created_at": r.created_at,
            "content": r.content, "content_sha256": r.content_sha256,
            "supersedes": revision_numbers.get(r.supersedes_id or 0),
            "signatures": revision_signatures.get(r.id, []),
            "attachments": [{
                "id": a.id, "kind": a.kind.value, "units": a.units,
                "description": a.description, "created_at": a.created_at,
                "removed_at": a.removed_at, "file": _file(a.file),
                "integrity": _check(integrity, "attachment", a.id),
            } for a in r.attachments],
        } for r in case.revisions],
        "case_signatures": other_signatures,
        "iterations": [{
            "id": i.id, "number": i.number, "units": i.units, "notes": i.notes,
            "based_on_revision": revision_numbers.get(i.based_on_revision_id),
            "created_at": i.created_at, "file": _file(i.file),
            "integrity": _check(integrity, "design_iteration", i.id),
        } for i in case.iterations],
        "reports": [{
            "id": r.id, "iteration": next((i.number for i in case.iterations
                                           if i.id == r.iteration_id), None),
            "passed": r.passed, "created_at": r.created_at, "mesh_sha256": r.mesh_sha256,
            "report_sha256": r.report_sha256, "record_key": r.record_key,
            "record_version_id": r.record_version_id,
            "envelope": _envelope(envelopes.get(r.envelope_version_id), r.envelope_sha256),
            "integrity": _check(integrity, "verification_report", r.id),
        } for r in reports],
        "envelope_checks": [e.__dict__ for e in integrity.envelopes],
        "history": [{
            "from": t.from_status.value if t.from_status else None, "to": t.to_status.value,
            "by": t.actor_label, "at": t.occurred_at, "reason": t.reason,
            "signature_id": t.signature_id} for t in case.transitions],
        "retention": {
            "retain_until": case.retain_until,
            "on_hold": any(f.legal_hold for f in files),
            "objects": len(files),
            "held_objects": sum(f.legal_hold for f in files),
            "earliest_object_retain_until": min((f.retain_until for f in files), default=None),
            "latest_object_retain_until": max((f.retain_until for f in files), default=None),
        },
        "audit": audit_history(session, case, page=audit_page, per_page=audit_per_page),
    }


def _envelope(version: EnvelopeVersion | None, bound_sha256: str) -> dict[str, Any]:
    if version is None:
        return {"id": None, "version": None, "status": None, "content_sha256": None,
                "bound_sha256": bound_sha256, "matches": False}
    return {"id": version.id, "version": version.version, "status": version.status.value,
            "content_sha256": version.content_sha256, "bound_sha256": bound_sha256,
            "approved_at": version.approved_at,
            "matches": version.content_sha256 == bound_sha256}


def audit_history(
    session: DbSession, case: Case, *, page: int = 1, per_page: int = AUDIT_PAGE_SIZE
) -> dict[str, Any]:
    """The case's audit events in time order (oldest first), one page, with before/after
    values; the chain position and hash where the audit trail carries them."""
    total = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
        AuditEvent.case_id == case.id)) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages)
    events = session.scalars(sa.select(AuditEvent).where(AuditEvent.case_id == case.id)
                             .order_by(AuditEvent.occurred_at, AuditEvent.id)
                             .limit(per_page).offset((page - 1) * per_page))
    items = [{
        "id": e.id, "occurred_at": e.occurred_at, "actor": e.actor_label, "action": e.action,
        "target": f"{e.target_type} {e.target_id}" if e.target_id else e.target_type,
        "before": e.before, "after": e.after, "remote_addr": e.remote_addr,
        # The hash chain comes with the audit-trail work; shown when the columns exist.
        "seq": e.seq, "hash": e.hash,
        "prev_hash": getattr(e, "prev_hash", None),
    } for e in events]
    return {"items": items, "page": page, "pages": pages, "per_page": per_page, "total": total}

