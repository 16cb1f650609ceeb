"""Design requests and the case workflow (DOMAIN.md §2, §3, §6).

Contracts: every function takes the session, the store (when it writes objects) and the actor;
checks visibility and the workflow order; writes the change, its status history and its audit
event in the caller's transaction; flushes, never commits.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import IO, Any

import sqlalchemy as sa
from marshmallow import ValidationError as SchemaError

from ..attachments import AttachmentRefused, ZipLimits, inspect_attachment
from ..canonical import canonical_sha256
from ..clock import utcnow
from ..errors import Conflict, Forbidden, NotFound, ServiceUnavailable, ValidationError
from ..models import (
    Attachment,
    AttachmentKind,
    Case,
    CaseStatus,
    CaseTransition,
    CharacteristicConfirmation,
    Comment,
    DesignIteration,
    DeviceType,
    FileState,
    Notification,
    Patient,
    RequestRevision,
    RevisionStatus,
    RoleRow,
    Signature,
    SignatureMeaning,
    Site,
    SiteKind,
    StoredFile,
    User,
    VerificationReport,
    VerificationResult,
)
from ..models.users import roles_users
from ..permissions import Role
from ..schemas import flatten_messages
from ..schemas.requests import SCHEMAS, CommonRequestSchema
from ..storage import ObjectStore, StorageError
from ..storage.uploads import SpooledUpload
from ..workflow import ActorFacts, TransitionRefused, Who, find_transition
from . import DbSession, free_text
from .audit import actor_label, record_event
from .cases import allocate_case_number
from .files import store_upload
from .signatures import check_password, sign

EDITABLE = (CaseStatus.DRAFT, CaseStatus.CHANGES_REQUESTED)


# -- visibility ---------------------------------------------------------------------------------
def visible_to_engineer(actor: User) -> sa.ColumnElement[bool]:
    """The queue (submitted, nobody assigned yet) and the cases assigned to ``actor``."""
    return sa.or_(
        sa.and_(Case.status == CaseStatus.SUBMITTED, Case.assigned_engineer_id.is_(None)),
        Case.assigned_engineer_id == actor.id)


def visible_cases(actor: User) -> sa.Select[tuple[Case]]:
    """Cases ``actor`` may see (least privilege, DOMAIN.md §8): clinicians their own (or their
    institution's when it shares cases), engineers the queue and the cases assigned to them,
    quality all; administrators none."""
    roles = set(actor.role_names)
    conditions: list[sa.ColumnElement[bool]] = []
    if Role.QUALITY in roles:
        conditions.append(sa.true())
    if Role.ENGINEER in roles:
        conditions.append(visible_to_engineer(actor))
    if Role.CLINICIAN in roles:
        conditions.append(Case.prescriber_id == actor.id)
        if actor.site is not None and actor.site.share_cases:
            conditions.append(Case.institution_id == actor.site_id)
    if not conditions:
        return sa.select(Case).where(sa.false())
    return sa.select(Case).where(sa.or_(*conditions))


def get_case(session: DbSession, actor: User, case_id: int, *, lock: bool = False,
             disposal: bool = False) -> Case:
    """The case if ``actor`` may see it; otherwise 404 (not 403: no existence leak).

    ``lock=True`` (every change) locks the case row until the transaction ends, so two
    concurrent workflow steps on one case are serialised (PostgreSQL ``FOR UPDATE``), and
    refuses a case that is disposed of or being disposed of (409): its records are destroyed
    or being destroyed, so nothing may be added to it. Only the disposal itself
    (``disposal=True``) may lock such a case, to complete an interrupted run.
    """
    if not 0 < case_id < 2**31:
        raise NotFound("There is no such case, or it is not yours to see.")
    query = visible_cases(actor).where(Case.id == case_id)
    if lock:
        query = query.with_for_update(of=Case)
    case = session.scalar(query)
    if case is None:
        raise NotFound("There is no such case, or it is not yours to see.")
    if lock and not disposal:
        refuse_if_disposed(session, case)
    return case


def refuse_if_disposed(session: DbSession, case: Case) -> None:
    """409 when ``case`` is disposed of, or its disposal was signed and is under way."""
    from ..models import TombstoneState
    from .retention import tombstone_of

    tomb = tombstone_of(session, case)
    if tomb is None:
        return
    if tomb.state is TombstoneState.COMPLETE:
        raise Conflict(f"{case.number} was disposed of on "
                       f"{tomb.completed_at or tomb.created_at:%Y-%m-%d}: its records are "
                       "destroyed and it takes no further changes.")
    raise Conflict(f"The disposal of {case.number} is under way (signed "
                   f"{tomb.created_at:%Y-%m-%d}): it takes no further changes. Complete the "
                   "disposal from the case page.")


# -- request content ----------------------------------------------------------------------------
def load_request(
    session: DbSession, data: dict[str, Any], *, pattern: str, partial: bool
) -> tuple[dict[str, Any], DeviceType]:
    """Validate request fields for the device type's category; return JSON-ready content."""
    try:
        base = CommonRequestSchema(partial=True).load(
            {k: data.get(k) for k in ("device_type_id",) if data.get(k) not in (None, "")},
            unknown="exclude")
    except SchemaError as exc:
        raise ValidationError("Please correct the marked fields.",
                              flatten_messages(exc.messages)) from exc
    device_type = session.get(DeviceType, base.get("device_type_id") or 0)
    if device_type is None or not device_type.active:
        raise ValidationError("Choose a device type from the catalogue.",
                              {"device_type_id": ["Choose a device type from the catalogue."]})
    schema = SCHEMAS[device_type.category.value](partial=partial)
    errors: dict[str, list[str]] = {}
    try:
        content = schema.load(data, unknown="exclude")
    except SchemaError as exc:
        errors = flatten_messages(exc.messages)
        content = {}
    code = data.get("patient_code")
    if isinstance(code, str) and code.strip() and not re.fullmatch(pattern, code.strip()):
        errors.setdefault("patient_code", []).append(
            f"Use the pseudonymous patient code format {pattern} (no names).")
    institution_id = data.get("institution_id")
    if institution_id not in (None, ""):
        site_id = _int(institution_id)
        site = session.get(Site, site_id) if 0 < site_id < 2**31 else None
        if site is None or site.kind is not SiteKind.HEALTH_INSTITUTION:
            errors.setdefault("institution_id", []).append("Choose a health institution.")
    known = {p["name"] for p in device_type.parameters}
    for field in ("design_parameters", "requested_parameters"):
        unknown = sorted(set(content.get(field) or {}) - known)
        if unknown:
            errors.setdefault(field, []).append(
                f"Unknown parameter(s) {', '.join(unknown)} for {device_type.name}; "
                f"known: {', '.join(sorted(known)) or 'none'}.")
    if errors:
        raise ValidationError("Please correct the marked fields.", errors)
    content["device_type_id"] = device_type.id
    return _jsonable(content), device_type


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _jsonable(content: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in content.items()}


# -- cases and drafts -----------------------------------------------------------------------
def create_case(
    session: DbSession, *, actor: User, data: dict[str, Any], pattern: str,
    now: datetime | None = None,
) -> Case:
    """Create a case with its first (draft) request revision; the actor is the prescriber."""
    now = now or utcnow()
    if Role.CLINICIAN not in actor.role_names:
        raise Forbidden("Only clinicians prescribe design requests.")
    if actor.site_id is not None:
        if data.get("institution_id") not in (None, "", actor.site_id, str(actor.site_id)):
            raise ValidationError("Please correct the marked fields.", {"institution_id": [
                "You can only prescribe for your own institution."]})
        data = {**data, "institution_id": actor.site_id}
    content, device_type = load_request(session, data, pattern=pattern, partial=True)
    missing = [f for f in ("patient_code", "institution_id") if not content.get(f)]
    if missing:
        raise ValidationError("Please correct the marked fields.",
                              {f: ["This field is required."] for f in missing})
    patient = _patient(session, content["patient_code"], content["institution_id"])
    case = Case(number=allocate_case_number(session, now), status=CaseStatus.DRAFT,
                patient_id=patient.id, device_type_id=device_type.id,
                institution_id=content["institution_id"], prescriber_id=actor.id,
                created_at=now, updated_at=now)
    session.add(case)
    session.flush()
    revision = RequestRevision(case_id=case.id, revision=1, status=RevisionStatus.DRAFT,
                               content=content, created_by_id=actor.id, created_at=now)
    session.add(revision)
    _history(session, case, None, CaseStatus.DRAFT, actor, now=now)
    session.flush()
    record_event(session, actor=actor, action="case.created", target_type="case",
                 target_id=case.id, case_id=case.id,
                 after={"number": case.number, "device_type_id": device_type.id,
                        "patient_code": patient.code, "request": content})
    return case


def _patient(session: DbSession, code: str, institution_id: int) -> Patient:
    patient = session.scalar(sa.select(Patient).where(
        Patient.code == code, Patient.institution_id == institution_id))
    if patient is None:
        patient = Patient(code=code, institution_id=institution_id)
        session.add(patient)
        session.flush()
    return patient


def _editable_revision(session: DbSession, actor: User, case: Case) -> RequestRevision:
    """The draft revision the prescriber may edit; a new one after changes were requested."""
    if case.prescriber_id != actor.id:
        raise Forbidden("Only the prescribing clinician edits this request.")
    if case.status not in EDITABLE:
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; its request can no "
                       "longer be edited. A correction needs a change request from engineering.")
    current = case.revisions[-1]
    if current.status is RevisionStatus.DRAFT:
        return current
    # Changes requested on a signed revision: start a new revision that will supersede it.
    revision = RequestRevision(case_id=case.id, revision=current.revision + 1,
                               status=RevisionStatus.DRAFT, content=dict(current.content),
                               created_by_id=actor.id, supersedes_id=current.id)
    session.add(revision)
    session.flush()
    for attachment in current.live_attachments:  # the frozen files carry over by reference
        session.add(Attachment(revision_id=revision.id, file_id=attachment.file_id,
                               kind=attachment.kind, units=attachment.units,
                               description=attachment.description,
                               created_by_id=attachment.created_by_id))
    session.flush()
    session.refresh(case)
    record_event(session, actor=actor, action="request.revision_started",
                 target_type="request_revision", target_id=revision.id, case_id=case.id,
                 after={"revision": revision.revision, "supersedes": current.revision})
    return revision


def update_draft(
    session: DbSession, *, actor: User, case: Case, data: dict[str, Any], pattern: str,
    replace: bool = False,
) -> RequestRevision:
    """Save draft fields. API: a merge where ``null`` clears a field; the HTML form replaces."""
    revision = _editable_revision(session, actor, case)
    # The device type and institution are fixed when the case is created.
    cleared = {k for k, v in data.items() if v is None}
    data = {k: v for k, v in data.items() if v is not None}
    data.update(device_type_id=case.device_type_id, institution_id=case.institution_id)
    content, _ = load_request(session, data, pattern=pattern, partial=True)
    if content.get("patient_code") and content["patient_code"] != case.patient.code:
        case.patient_id = _patient(session, content["patient_code"], case.institution_id).id
    before = dict(revision.content)
    if replace:
        # A posted form holds every field: what it leaves empty is cleared.
        keep = {"patient_code": before.get("patient_code")}
        revision.content = {**{k: v for k, v in keep.items() if v}, **content}
    else:
        revision.content = {k: v for k, v in {**before, **content}.items() if k not in cleared}
    case.updated_at = utcnow()
    session.flush()
    record_event(session, actor=actor, action="request.draft_saved",
                 target_type="request_revision", target_id=revision.id, case_id=case.id,
                 before=before, after=revision.content)
    return revision


# -- attachments ----------------------------------------------------------------------------
def add_attachment(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, stream: IO[bytes],
    filename: str | None, kind: str, units: str, max_bytes: int,
    zip_limits: ZipLimits | None = None, description: str = "",
) -> Attachment:
    """Validate the file's content against its claimed type, store it, attach it to the draft."""
    try:
        attachment_kind = AttachmentKind(kind)
    except ValueError as exc:
        raise ValidationError("Choose what the file is.", {"kind": [
            "Choose one of: " + ", ".join(k.value for k in AttachmentKind) + "."]}) from exc
    if units not in {"mm", "cm", "m", "in"}:
        raise ValidationError("Choose the units.", {"units": ["Choose one of: mm, cm, m, in."]})
    description = free_text(description, "description", 500)
    revision = _editable_revision(session, actor, case)

    def validate(upload: SpooledUpload) -> str:
        try:
            return inspect_attachment(upload.path, upload.original_name, attachment_kind,
                                      units, zip_limits)
        except AttachmentRefused as exc:
            raise ValidationError(exc.message, {"file": [exc.message]}) from exc

    stored = store_upload(session, store, actor=actor, stream=stream, original_name=filename,
                          max_bytes=max_bytes, validate=validate, case_id=case.id)
    attachment = Attachment(revision_id=revision.id, file_id=stored.id, kind=attachment_kind,
                            units=units if attachment_kind is AttachmentKind.MODEL_3D else None,
                            description=description, created_by_id=actor.id)
    session.add(attachment)
    session.flush()
    record_event(session, actor=actor, action="attachment.added", target_type="attachment",
                 target_id=attachment.id, case_id=case.id, after={
                     "revision": revision.revision, "file_id": stored.id, "kind": kind,
                     "sha256": stored.sha256, "original_name": stored.original_name})
    return attachment


def remove_attachment(session: DbSession, *, actor: User, case: Case, attachment_id: int) -> None:
    revision = _editable_revision(session, actor, case)
    attachment = session.get(Attachment, attachment_id)
    if attachment is None or attachment.revision_id != revision.id or attachment.removed_at:
        raise NotFound("No such attachment on this draft.")
    # A file signed with an earlier revision stays on that revision's record; here it is only
    # taken off the new draft.
    attachment.removed_at = utcnow()
    session.flush()
    record_event(session, actor=actor, action="attachment.removed", target_type="attachment",
                 target_id=attachment.id, case_id=case.id,
                 before={"removed_at": None}, after={"removed_at": attachment.removed_at})


# -- the signed record ----------------------------------------------------------------------
def revision_record(case: Case, revision: RequestRevision) -> dict[str, Any]:
    """The canonical content a request signature binds: fields, parties and file hashes."""
    prescriber = case.prescriber
    return {
        "record_type": "request_revision",
        "case_number": case.number,
        "revision_id": revision.id,
        "revision": revision.revision,
        "supersedes_revision_id": revision.supersedes_id,
        "device_type": {"id": case.device_type.id, "name": case.device_type.name,
                        "category": case.device_type.category.value,
                        "implantable": case.device_type.implantable},
        "patient_code": case.patient.code,
        "institution": case.institution.name,
        "prescriber": {"printed_name": prescriber.printed_name, "email": prescriber.email,
                       "registration_number": prescriber.registration_number},
        "request_date": revision.created_at.date().isoformat(),
        "content": revision.content,
        "attachments": [
            {"id": a.id, "kind": a.kind.value, "units": a.units,
             "original_name": a.file.original_name, "media_type": a.file.media_type,
             "size": a.file.size, "sha256": a.file.sha256}
            for a in revision.live_attachments],
    }


def case_record(
    case: Case, target: CaseStatus, report: VerificationReport | None = None,
    confirmations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What a signature on a case decision (verified, approved, released) binds: the signed
    request, the latest design iteration and its latest verification report, and for
    custom-made and adaptable devices the engineer's item-by-item confirmations."""
    signed = [r for r in case.revisions if r.status is RevisionStatus.SIGNED]
    latest = case.iterations[-1] if case.iterations else None
    extra = {} if confirmations is None else {"characteristic_confirmations": confirmations}
    return {
        **extra,
        "record_type": "case_decision",
        "case_number": case.number,
        "decision": target.value,
        "request_revision_id": signed[-1].id if signed else None,
        "request_revision": signed[-1].revision if signed else None,
        "request_sha256": signed[-1].content_sha256 if signed else None,
        "design_iteration": None if latest is None else {
            "id": latest.id, "number": latest.number, "sha256": latest.file.sha256},
        "verification_report": None if report is None else {
            "id": report.id, "passed": report.passed, "report_sha256": report.report_sha256,
            "envelope_version_id": report.envelope_version_id,
            "envelope_sha256": report.envelope_sha256},
    }


def signed_parts(record: dict[str, Any]) -> dict[str, Any]:
    """The parts of a signed record that must never change afterwards (names may)."""
    if record.get("record_type") == "request_revision":
        return {"revision_id": record.get("revision_id"), "content": record.get("content"),
                "files": sorted([a["id"], a["sha256"]] for a in record.get("attachments", []))}
    iteration = record.get("design_iteration") or {}
    report = record.get("verification_report") or {}
    parts: dict[str, Any] = {
        "request_revision_id": record.get("request_revision_id"),
        "request_sha256": record.get("request_sha256"),
        "design_iteration": [iteration.get("id"), iteration.get("sha256")],
        "verification_report": [report.get("id"), report.get("report_sha256")]}
    if "characteristic_confirmations" in record:
        parts["characteristic_confirmations"] = sorted(
            [c["id"], c["item"], c["prescribed"], c["met"], c["note"]]
            for c in record["characteristic_confirmations"])
    return parts


def current_parts(session: DbSession, case: Case, signature: Signature) -> dict[str, Any]:
    """The same parts as the database holds them now, found by the ids the signature names."""
    record = signature.signed_record
    if signature.target_type == "request_revision":
        revision = session.get(RequestRevision, signature.target_id)
        if revision is None or revision.case_id != case.id:
            return {"missing": "request revision"}
        return {"revision_id": revision.id, "content": revision.content,
                "files": sorted([a.id, a.file.sha256] for a in revision.live_attachments)}
    revision = session.get(RequestRevision, record.get("request_revision_id") or 0)
    iteration_id = (record.get("design_iteration") or {}).get("id")
    iteration = session.get(DesignIteration, iteration_id) if iteration_id else None
    report_id = (record.get("verification_report") or {}).get("id")
    report = session.get(VerificationReport, report_id) if report_id else None
    parts: dict[str, Any] = {
        "request_revision_id": revision.id if revision else None,
        "request_sha256": revision.content_sha256 if revision else None,
        "design_iteration": [iteration.id, iteration.file.sha256] if iteration
        else [None, None],
        "verification_report": [report.id, canonical_sha256(report.report)] if report
        else [None, None]}
    if "characteristic_confirmations" in record:
        ids = [c.get("id") for c in record["characteristic_confirmations"]]
        rows = [session.get(CharacteristicConfirmation, i) for i in ids]
        parts["characteristic_confirmations"] = sorted(
            [row.id, row.item, row.prescribed, row.met, row.note] if row is not None
            and row.case_id == case.id else [i, None, None, None, None]
            for row, i in zip(rows, ids, strict=True))
    return parts


def _retain_until(session: DbSession, case: Case, now: datetime) -> datetime:
    """Retain-until of a record object made now (the policy's deadline; services.retention)."""
    from .retention import deadline_for_new_record

    return deadline_for_new_record(session, case, now=now)


def _protect(session: DbSession, store: ObjectStore, actor: User, case: Case, cause: str) -> None:
    """Extend every record object of the case when an event moved its deadline."""
    from .retention import protect_case

    protect_case(session, store, actor=actor, case=case, cause=cause)


def _freeze(session: DbSession, store: ObjectStore, *, actor: User, case: Case,
            files: list[StoredFile], retain_until: datetime) -> None:
    """Make files immutable record objects: retention extended in the store, then the rows.

    Extending first is safe: if the transaction later fails, the store keeps an object longer
    than the database says (never shorter), which reconciliation accepts.
    """
    for stored in files:
        before = {"state": stored.state.value, "retain_until": stored.retain_until}
        if stored.retain_until < retain_until:
            try:
                store.extend_retention(stored.key, version_id=stored.version_id,
                                       retain_until=retain_until)
            except StorageError as exc:
                raise ServiceUnavailable(
                    "The file store is unavailable; nothing was signed. Try again later."
                ) from exc
            stored.retain_until = retain_until
        stored.state = FileState.RECORD
        record_event(session, actor=actor, action="file.frozen", target_type="stored_file",
                     target_id=stored.id, case_id=case.id, before=before,
                     after={"state": stored.state.value, "retain_until": stored.retain_until})
    session.flush()


# -- workflow -------------------------------------------------------------------------------
def facts_for(session: DbSession, actor: User, case: Case) -> ActorFacts:
    verified_by_actor = session.scalar(sa.select(sa.func.count()).select_from(Signature).where(
        Signature.case_id == case.id, Signature.meaning == SignatureMeaning.VERIFIED,
        Signature.signer_id == actor.id)) or 0
    from .confirmations import unconfirmed
    from .verification import latest_iteration_passed

    return ActorFacts(roles=frozenset(actor.role_names), is_prescriber=case.prescriber_id ==
                      actor.id, verified_by_actor=verified_by_actor > 0,
                      latest_iteration_passed=latest_iteration_passed(session, case),
                      unconfirmed_characteristics=unconfirmed(session, case))


def transition(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, target: str,
    reason: str = "", password: str | None = None, delivered_on: date | None = None,
    pattern: str = ".*", now: datetime | None = None, totp_code: str | None = None,
) -> CaseTransition:
    """Move ``case`` to ``target`` if the workflow allows it for ``actor`` (§11.10(f), (g))."""
    now = now or utcnow()
    try:
        target_status = CaseStatus(target)
    except ValueError as exc:
        raise ValidationError("Unknown target state.", {"to": [
            "Choose one of: " + ", ".join(s.value for s in CaseStatus) + "."]}) from exc
    try:
        step = find_transition(case.status, target_status, facts_for(session, actor, case))
    except TransitionRefused as exc:
        if exc.status == 403:
            raise Forbidden(exc.message) from exc
        raise Conflict(exc.message) from exc
    reason = free_text(reason, "reason", 2000)
    if step.reason_required and not reason:
        raise ValidationError("Give a reason.", {"reason": ["A reason is required for this step."]})
    extra: dict[str, Any] = {}
    if target_status is CaseStatus.DELIVERED:
        extra = _delivery(case, delivered_on, now)
    signature = None
    if target_status is CaseStatus.SUBMITTED:
        signature = _sign_request(session, store, actor=actor, case=case, password=password,
                                  totp_code=totp_code, pattern=pattern, now=now)
    elif step.signature is not None:
        from .confirmations import signed_confirmations
        from .verification import latest_report

        report = latest_report(session, case.iterations[-1]) if case.iterations else None
        signature = sign(session, store, actor=actor, password=password, totp_code=totp_code,
                         meaning=step.signature,
                         target_type="case", target_id=case.id,
                         content=case_record(case, target_status, report,
                                             signed_confirmations(session, case)),
                         record_key_prefix=f"records/{case.number}",
                         retain_until=_retain_until(session, case, now), case_id=case.id,
                         now=now)
    if target_status is CaseStatus.RELEASED:
        case.released_at = now
    if (case.status is CaseStatus.SUBMITTED and case.assigned_engineer_id is None
            and Role.ENGINEER in actor.role_names and step.who is not Who.PRESCRIBER_OR_QUALITY):
        # The engineer who takes the case from the queue is responsible for it from now on.
        case.assigned_engineer_id = actor.id
        extra["assigned_engineer_id"] = actor.id
    before = case.status
    case.status = target_status
    case.updated_at = now
    row = _history(session, case, before, target_status, actor, reason=reason.strip(),
                   signature=signature, now=now)
    record_event(session, actor=actor, action="case.transition", target_type="case",
                 target_id=case.id, case_id=case.id,
                 before={"status": before.value},
                 after={"status": target_status.value, "reason": reason.strip(),
                        "signature_id": signature.id if signature else None, **extra})
    _notify_for(session, case, target_status, actor)
    _protect(session, store, actor, case, cause=f"case {target_status.value}")
    return row


def _delivery(case: Case, delivered_on: date | None, now: datetime) -> dict[str, Any]:
    if delivered_on is None:
        raise ValidationError("Give the delivery date.", {"delivered_on": [
            "Enter the date the device was delivered."]})
    if delivered_on > now.date():
        raise ValidationError("The delivery date is in the future.", {"delivered_on": [
            "A delivery cannot be recorded before it happens."]})
    if case.released_at is not None and delivered_on < case.released_at.date():
        raise ValidationError("The delivery date is before the release.", {"delivered_on": [
            f"The device was released on {case.released_at.date().isoformat()}."]})
    case.delivered_on = delivered_on
    # Back-dating is allowed (the form may be filled in later) and recorded as such.
    return {"delivered_on": delivered_on.isoformat(), "backdated": delivered_on < now.date()}


def _sign_request(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, password: str | None,
    pattern: str, now: datetime, totp_code: str | None = None,
) -> Signature:
    revision = case.revisions[-1]
    if revision.status is not RevisionStatus.DRAFT:
        revision = _editable_revision(session, actor, case)
    # Full validation now: every required field of the category.
    data = {**revision.content, "device_type_id": case.device_type_id,
            "institution_id": case.institution_id, "patient_code": case.patient.code}
    load_request(session, data, pattern=pattern, partial=False)
    _check_parameter_ranges(session, case, revision.content)
    verified = check_password(actor, password, totp_code)  # before the store is touched
    record = revision_record(case, revision)
    retain_until = _retain_until(session, case, now)
    _freeze(session, store, actor=actor, case=case,
            files=[a.file for a in revision.live_attachments], retain_until=retain_until)
    signature = sign(session, store, actor=actor, password=None, verified=verified,
                     meaning=SignatureMeaning.AUTHORED, target_type="request_revision",
                     target_id=revision.id, content=record,
                     record_key_prefix=f"records/{case.number}", retain_until=retain_until,
                     case_id=case.id, now=now)
    revision.status = RevisionStatus.SIGNED
    revision.content_sha256 = signature.content_sha256
    if revision.supersedes_id is not None:
        previous = session.get(RequestRevision, revision.supersedes_id)
        if previous is not None:
            previous.status = RevisionStatus.SUPERSEDED
    session.flush()
    return signature


def _check_parameter_ranges(session: DbSession, case: Case, content: dict[str, Any]) -> None:
    """Requested or prescribed parameter values must lie in the approved envelope's ranges
    (FDA AM guidance §V.B: the patient-matched design stays inside the validated envelope)."""
    from .envelopes import approved_version

    envelope = approved_version(session, case.device_type_id)
    if envelope is None:
        return
    ranges = envelope.definition.get("parameters") or {}
    errors: dict[str, list[str]] = {}
    for field in ("requested_parameters", "design_parameters"):
        for name, value in (content.get(field) or {}).items():
            spec = ranges.get(name)
            if spec is None:
                continue
            low, high = spec.get("min"), spec.get("max")
            if (low is not None and value < low) or (high is not None and value > high):
                unit = f" {spec.get('unit')}" if spec.get("unit") else ""
                errors[f"{field}.{name}"] = [
                    f"{value}{unit} is outside the approved envelope (version "
                    f"{envelope.version}): {low}–{high}{unit}."]
    if errors:
        raise ValidationError("Requested values lie outside the validated design envelope.",
                              errors)


def _history(
    session: DbSession, case: Case, source: CaseStatus | None, target: CaseStatus, actor: User,
    *, reason: str = "", signature: Signature | None = None, now: datetime | None = None,
) -> CaseTransition:
    row = CaseTransition(case_id=case.id, from_status=source, to_status=target,
                         actor_id=actor.id, actor_label=actor_label(actor), reason=reason,
                         signature_id=signature.id if signature else None,
                         occurred_at=now or utcnow())
    session.add(row)
    session.flush()
    return row


# -- assignment -------------------------------------------------------------------------------
def assign_engineer(session: DbSession, *, actor: User, case: Case, engineer_id: int) -> None:
    """Quality reassigns a case to another engineer (who then sees it; the previous one not)."""
    if Role.QUALITY not in actor.role_names:
        raise Forbidden("Only quality users reassign cases.")
    engineer = session.get(User, engineer_id) if 0 < engineer_id < 2**31 else None
    if engineer is None or not engineer.active or Role.ENGINEER not in engineer.role_names:
        raise ValidationError("Choose an active engineer.", {"engineer_id": [
            "Choose an active engineer account."]})
    if case.status in (CaseStatus.DRAFT, CaseStatus.CANCELLED, CaseStatus.REJECTED):
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; only submitted "
                       "cases are assigned to engineers.")
    before = case.assigned_engineer_id
    case.assigned_engineer_id = engineer.id
    session.flush()
    record_event(session, actor=actor, action="case.assigned", target_type="case",
                 target_id=case.id, case_id=case.id, before={"assigned_engineer_id": before},
                 after={"assigned_engineer_id": engineer.id})
    _notify(session, {engineer.id} - {actor.id}, case,
            f"{actor.printed_name} assigned {case.number} to you.")


def engineers(session: DbSession) -> list[User]:
    ids = _role_user_ids(session, Role.ENGINEER)
    return list(session.scalars(sa.select(User).where(User.id.in_(ids)).order_by(User.email)))


# -- comments and notifications -------------------------------------------------------------
def add_comment(session: DbSession, *, actor: User, case: Case, body: str) -> Comment:
    comment = Comment(case_id=case.id, author_id=actor.id, body=body)
    session.add(comment)
    session.flush()
    record_event(session, actor=actor, action="comment.added", target_type="comment",
                 target_id=comment.id, case_id=case.id, after={"body": body})
    recipients = {case.prescriber_id} | _engineers_of(session, case)
    _notify(session, recipients - {actor.id}, case,
            f"{actor.printed_name} commented on {case.number}.")
    return comment


def _engineers_of(session: DbSession, case: Case) -> set[int]:
    """Engineers to tell about a case: its assignee, or all engineers while it waits in the
    queue (never an engineer who may not see it)."""
    if case.assigned_engineer_id is not None:
        return {case.assigned_engineer_id}
    if case.status is CaseStatus.SUBMITTED:
        return _role_user_ids(session, Role.ENGINEER)
    return set()



NOTIFY_ROLE = {
    CaseStatus.SUBMITTED: Role.ENGINEER,
    CaseStatus.APPROVED: Role.QUALITY,
}
NOTIFY_PRESCRIBER = {CaseStatus.ACCEPTED, CaseStatus.REJECTED, CaseStatus.CHANGES_REQUESTED,
                     CaseStatus.AWAITING_APPROVAL, CaseStatus.RELEASED, CaseStatus.DELIVERED,
                     CaseStatus.CANCELLED}


def _notify_for(session: DbSession, case: Case, target: CaseStatus, actor: User) -> None:
    recipients: set[int] = set()
    if NOTIFY_ROLE.get(target) is Role.ENGINEER:
        recipients |= _engineers_of(session, case)
    elif target in NOTIFY_ROLE:
        recipients |= _role_user_ids(session, NOTIFY_ROLE[target])
    if target in NOTIFY_PRESCRIBER or target is CaseStatus.IN_DESIGN:
        recipients.add(case.prescriber_id)
    _notify(session, recipients - {actor.id}, case,
            f"{case.number} is now {target.value.replace('_', ' ')} ({actor.printed_name}).")


def _role_user_ids(session: DbSession, role: Role) -> set[int]:
    return set(session.scalars(
        sa.select(User.id).join(roles_users, roles_users.c.user_id == User.id)
        .join(RoleRow, RoleRow.id == roles_users.c.role_id)
        .where(RoleRow.name == role.value, User.active.is_(True))))


def _notify(session: DbSession, user_ids: set[int], case: Case, message: str) -> None:
    for user_id in sorted(user_ids):
        session.add(Notification(user_id=user_id, case_id=case.id, message=message[:500]))
    session.flush()


def unread_notifications(session: DbSession, user: User, limit: int = 20) -> list[Notification]:
    return list(session.scalars(
        sa.select(Notification).where(Notification.user_id == user.id,
                                      Notification.read_at.is_(None))
        .order_by(Notification.id.desc()).limit(limit)))


def mark_notifications_read(session: DbSession, user: User) -> int:
    rows = session.execute(sa.update(Notification).where(
        Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow()))
    return int(getattr(rows, "rowcount", 0) or 0)


# -- design iterations ------------------------------------------------------------------------
def add_design_iteration(
    session: DbSession, store: ObjectStore, *, actor: User, case: Case, stream: IO[bytes],
    filename: str | None, units: str, max_bytes: int, notes: str = "",
    zip_limits: ZipLimits | None = None, now: datetime | None = None,
) -> DesignIteration:
    """Upload a design iteration (a mesh) to an accepted case; the first one moves the case
    to *in design* (the workflow's automatic step). The mesh is checked like a 3D attachment;
    verification against the envelope is a separate step."""
    now = now or utcnow()
    if Role.ENGINEER not in actor.role_names:
        raise Forbidden("Only engineers upload design iterations.")
    if case.status not in (CaseStatus.ACCEPTED, CaseStatus.IN_DESIGN):
        raise Conflict(f"The case is {case.status.value.replace('_', ' ')}; design iterations "
                       "are uploaded to accepted cases and cases in design.")
    if units not in {"mm", "cm", "m", "in"}:
        raise ValidationError("Choose the units.", {"units": ["Choose one of: mm, cm, m, in."]})
    notes = free_text(notes, "notes", 5000)
    signed = [r for r in case.revisions if r.status is RevisionStatus.SIGNED]
    if not signed:
        raise Conflict("The case has no signed request to design from.")

    def validate(upload: SpooledUpload) -> str:
        try:
            return inspect_attachment(upload.path, upload.original_name,
                                      AttachmentKind.MODEL_3D, units, zip_limits)
        except AttachmentRefused as exc:
            raise ValidationError(exc.message, {"file": [exc.message]}) from exc

    stored = store_upload(session, store, actor=actor, stream=stream, original_name=filename,
                          max_bytes=max_bytes, validate=validate, case_id=case.id, now=now)
    # A design iteration is a record from the start: it is what the device may be made from.
    _freeze(session, store, actor=actor, case=case, files=[stored],
            retain_until=_retain_until(session, case, now))
    number = (max((i.number for i in case.iterations), default=0)) + 1
    iteration = DesignIteration(case_id=case.id, number=number,
                                based_on_revision_id=signed[-1].id, file_id=stored.id,
                                units=units, notes=notes, created_by_id=actor.id,
                                created_at=now)
    session.add(iteration)
    # The latest iteration has no verification yet (what search filters on).
    case.verification_result = VerificationResult.NONE
    session.flush()
    record_event(session, actor=actor, action="design_iteration.added",
                 target_type="design_iteration", target_id=iteration.id, case_id=case.id,
                 after={"number": number, "based_on_revision": signed[-1].revision,
                        "sha256": stored.sha256, "units": units})
    if case.status is CaseStatus.ACCEPTED:
        before = case.status
        case.status = CaseStatus.IN_DESIGN
        case.updated_at = now
        _history(session, case, before, CaseStatus.IN_DESIGN, actor,
                 reason=f"first design iteration (#{number})", now=now)
        record_event(session, actor=actor, action="case.transition", target_type="case",
                     target_id=case.id, case_id=case.id, before={"status": before.value},
                     after={"status": CaseStatus.IN_DESIGN.value, "automatic": True})
        _notify_for(session, case, CaseStatus.IN_DESIGN, actor)
    _protect(session, store, actor, case, cause=f"design iteration #{number}")
    session.refresh(case)
    return iteration
