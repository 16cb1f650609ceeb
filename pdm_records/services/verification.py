"""Verifying a design iteration against the approved envelope of its device type.

The report is computed by the pure geometry core from the stored mesh bytes (read back and
checked against their SHA-256), bound to the mesh hash and the envelope version's content hash,
stored immutably as canonical JSON, and indexed by a ``verification_report`` row.
A design that fails its envelope can never be signed as verified (Part 11 §11.10(f)).
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..canonical import canonical_json, canonical_sha256, sha256_hex
from ..clock import utcnow
from ..envelopes import EnvelopeError
from ..errors import Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationError
from ..geometry.errors import MeshError, RayEngineUnavailable
from ..geometry.report import check_mesh_bytes
from ..models import (
    Case,
    CaseStatus,
    DesignIteration,
    RevisionStatus,
    User,
    VerificationReport,
    VerificationResult,
)
from ..permissions import Role
from ..storage import ObjectStore, StorageError, StorageUnavailable
from . import DbSession
from .audit import record_event
from .envelopes import approved_definition, approved_version


def verify_iteration(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, number: int,
    now: datetime | None = None,
) -> VerificationReport:
    now = now or utcnow()
    if Role.ENGINEER not in actor.role_names:
        raise Forbidden("Only engineers run design verification.")
    if case.status is not CaseStatus.IN_DESIGN:
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; design iterations "
                       "are verified while the case is in design.")
    iteration = next((i for i in case.iterations if i.number == number), None)
    if iteration is None:
        raise NotFound("No such design iteration on this case.")
    envelope = approved_version(session, case.device_type_id)
    if envelope is None or envelope.content_sha256 is None:
        raise Conflict(f"{case.device_type.name} has no approved design envelope; quality must "
                       "approve one before designs can be verified.")
    stored = iteration.file
    try:
        data = store.read(stored.key, version_id=stored.version_id, sha256=stored.sha256)
    except StorageError as exc:
        raise ServiceUnavailable(f"The design file could not be read: {exc}") from exc
    signed = [r for r in case.revisions if r.status is RevisionStatus.SIGNED]
    requested = (signed[-1].content.get("requested_parameters") if signed else None) or None
    file_type = stored.original_name.rsplit(".", 1)[-1].lower()
    try:
        report = check_mesh_bytes(data, file_type, iteration.units,
                                  approved_definition(session, envelope),
                                  requested_parameters=requested)
    except MeshError as exc:
        raise ValidationError(f"The design cannot be verified: {exc.message}.",
                              {"file": [exc.message]}) from exc
    except EnvelopeError as exc:  # an approved envelope was validated; defensive
        raise Conflict(f"The approved envelope cannot be evaluated: {exc}") from exc
    except RayEngineUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from exc
    report["binding"] = {"case_number": case.number, "iteration": iteration.number,
                         "mesh_sha256": stored.sha256, "envelope_version_id": envelope.id,
                         "envelope_version": envelope.version,
                         "envelope_sha256": envelope.content_sha256}
    passed = bool(report.get("evaluation", {}).get("passed"))
    body = canonical_json(report)
    row = VerificationReport(
        case_id=case.id, iteration_id=iteration.id, envelope_version_id=envelope.id,
        envelope_sha256=envelope.content_sha256, mesh_sha256=stored.sha256, passed=passed,
        report=report, report_sha256=sha256_hex(body), created_by_id=actor.id,
        created_at=now, record_key="")
    session.add(row)
    session.flush()
    # The row id keeps the key unique when the same iteration is verified again.
    row.record_key = (f"records/{case.number}/verification-{iteration.number}-{row.id}-"
                      f"{row.report_sha256[:16]}.json")
    if iteration.id == case.iterations[-1].id:  # what search filters on (services/search.py)
        case.verification_result = (VerificationResult.PASSED if passed
                                    else VerificationResult.FAILED)
    record_event(session, actor=actor, action="design_iteration.verified",
                 target_type="verification_report", target_id=row.id, case_id=case.id,
                 after={"iteration": iteration.number, "passed": passed,
                        "envelope_version": envelope.version,
                        "report_sha256": row.report_sha256})
    from .retention import deadline_for_new_record, protect_case

    _store_report(store, row, body, deadline_for_new_record(session, case, now=now))
    protect_case(session, store, actor=actor, case=case,
                 cause=f"verification report of design iteration #{iteration.number}")
    return row


def request_verification(session: DbSession, *, actor: User, case: Case, number: int) -> Any:
    """Check what can be checked now, then queue the verification as a background job."""
    from .jobs import enqueue

    if Role.ENGINEER not in actor.role_names:
        raise Forbidden("Only engineers run design verification.")
    if case.status is not CaseStatus.IN_DESIGN:
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; design iterations "
                       "are verified while the case is in design.")
    if not any(i.number == number for i in case.iterations):
        raise NotFound("No such design iteration on this case.")
    if approved_version(session, case.device_type_id) is None:
        raise Conflict(f"{case.device_type.name} has no approved design envelope; quality must "
                       "approve one before designs can be verified.")
    return enqueue(session, kind="verify_iteration", actor=actor, case_id=case.id,
                   payload={"case_id": case.id, "number": number})


def _store_report(store: ObjectStore, row: VerificationReport, body: bytes,
                  retain_until: datetime) -> None:
    with tempfile.NamedTemporaryFile(prefix="pdm-report-") as tmp:
        tmp.write(body)
        tmp.flush()
        try:
            info = store.put(row.record_key, Path(tmp.name), sha256=row.report_sha256,
                             size=len(body), media_type="application/json",
                             retain_until=retain_until)
        except StorageUnavailable as exc:
            raise ServiceUnavailable("The record store is unavailable; the verification was "
                                     "not recorded. Try again later.") from exc
    row.record_version_id = info.version_id


def latest_report(session: DbSession, iteration: DesignIteration) -> VerificationReport | None:
    return session.scalar(sa.select(VerificationReport).where(
        VerificationReport.iteration_id == iteration.id).order_by(
        VerificationReport.id.desc()).limit(1))


def report_intact(report: VerificationReport) -> bool:
    """The stored report still hashes to its recorded digest and agrees with its flag."""
    evaluation = report.report.get("evaluation") or {}
    return (canonical_sha256(report.report) == report.report_sha256
            and bool(evaluation.get("passed")) == report.passed)


def latest_iteration_passed(session: DbSession, case: Case) -> bool | None:
    """True/False for the latest iteration's latest report; None when it has none.
    A report that no longer matches its digest never counts as passed."""
    if not case.iterations:
        return None
    report = latest_report(session, case.iterations[-1])
    if report is None:
        return None
    return report.passed and report_intact(report)


def report_summary(report: VerificationReport) -> dict[str, Any]:
    evaluation = report.report.get("evaluation", {})
    checks = evaluation.get("checks", {})
    ordered = [dict(name=name, **checks[name]) for name in evaluation.get("checks_by_margin", [])
               if name in checks]
    return {"id": report.id, "passed": report.passed, "created_at": report.created_at.isoformat(),
            "envelope_version_id": report.envelope_version_id,
            "envelope_sha256": report.envelope_sha256, "mesh_sha256": report.mesh_sha256,
            "report_sha256": report.report_sha256, "checks": ordered,
            "warnings": report.report.get("warnings", []),
            "digest": canonical_sha256(report.report) == report.report_sha256}
