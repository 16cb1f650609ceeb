"""Cases, design requests, attachments, signatures and workflow steps (JSON)."""

from __future__ import annotations

from typing import Any

from flask import current_app, request, send_file
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from ..access import require_actor, requires
from ..attachments import ZipLimits
from ..audited_reads import client_address, commit_read
from ..context import get_store
from ..errors import ValidationError
from ..extensions import db
from ..models import Case, CaseStatus
from ..permissions import Permission
from ..schemas import PageQuerySchema
from ..schemas.requests import (
    CaseSummarySchema,
    CharacteristicConfirmationSchema,
    CommentSchema,
    SubmitSchema,
    TransitionSchema,
)
from ..schemas.responses import (
    ATTACHMENT_MEDIA_TYPES,
    AttachmentCreatedSchema,
    CaseDetailSchema,
    CasePageSchema,
    CommentCreatedSchema,
    IterationCreatedSchema,
    JobSchema,
    binary_content,
)
from ..services import requests as svc
from ..services.case_views import attachment_download, case_detail
from .docs import ApiBlueprint
from .pages import page_of

PREFIX = "/cases"
blp = ApiBlueprint("api_cases", __name__, description="Cases and design requests")
UNITS = ("mm", "cm", "m", "in")


def multipart(properties: dict[str, Any], description: str) -> dict[str, Any]:
    """A documented ``multipart/form-data`` upload (the view reads ``request.files``)."""
    return {"required": True, "description": description, "content": {"multipart/form-data": {
        "schema": {"type": "object", "required": ["file"], "properties": {
            "file": {"type": "string", "format": "binary"}, **properties}}}}}


class CaseListQuerySchema(PageQuerySchema):
    status = fields.String(load_default=None, validate=validate.OneOf(
        [s.value for s in CaseStatus]))
    sort = fields.String(load_default="-created_at", validate=validate.OneOf(
        ["created_at", "-created_at", "number", "-number", "status", "-status"]))


class RequestBodySchema(Schema):
    """Request fields; which are required depends on the device type's category."""

    class Meta:
        unknown = "include"


def zip_limits() -> ZipLimits:
    config = current_app.config
    return ZipLimits(max_decompressed_bytes=int(config["PDM_ZIP_MAX_DECOMPRESSED_MB"]) * 2**20,
                     max_ratio=float(config["PDM_ZIP_MAX_RATIO"]))


def _config_pattern() -> str:
    return str(current_app.config["PDM_PATIENT_CODE_PATTERN"])


@blp.route("", methods=["GET"])
@requires(Permission.VIEW_CASES)
@blp.arguments(CaseListQuerySchema, location="query")
@blp.alt_response(200, schema=CasePageSchema, success=True)
def list_cases(args: dict[str, Any]) -> dict[str, Any]:
    """Cases you may see, filtered and sorted, paginated."""
    query = svc.visible_cases(require_actor())
    if args["status"]:
        query = query.where(Case.status == CaseStatus(args["status"]))
    column = getattr(Case, args["sort"].lstrip("-"))
    query = query.order_by(column.desc() if args["sort"].startswith("-") else column.asc(),
                           Case.id.desc())
    return page_of(query, args, CaseSummarySchema())


@blp.route("", methods=["POST"])
@requires(Permission.CREATE_REQUEST)
@blp.arguments(RequestBodySchema)
@blp.response(201)
@blp.alt_response(201, schema=CaseDetailSchema, success=True)
def create_case(data: dict[str, Any]) -> dict[str, Any]:
    """Create a case with its draft request (you are the prescriber)."""
    actor = require_actor()
    case = svc.create_case(db.session, actor=actor, data=data, pattern=_config_pattern())
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


@blp.route("/<int:case_id>", methods=["GET"])
@requires(Permission.VIEW_CASES)
@blp.alt_response(200, schema=CaseDetailSchema, success=True)
def get_case(case_id: int) -> dict[str, Any]:
    """The case with request revisions, attachments, signatures, history and comments."""
    actor = require_actor()
    return case_detail(db.session, actor, svc.get_case(db.session, actor, case_id), get_store())


@blp.route("/<int:case_id>/request", methods=["PATCH"])
@requires(Permission.CREATE_REQUEST)
@blp.arguments(RequestBodySchema)
@blp.alt_response(200, schema=CaseDetailSchema, success=True)
@blp.errors(409)
def update_request(data: dict[str, Any], case_id: int) -> dict[str, Any]:
    """Save fields of the draft request (a new revision after changes were requested)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.update_draft(db.session, actor=actor, case=case, data=data, pattern=_config_pattern())
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


@blp.route("/<int:case_id>/attachments", methods=["POST"])
@requires(Permission.CREATE_REQUEST)
@blp.response(201)
@blp.alt_response(201, schema=AttachmentCreatedSchema, success=True)
@blp.doc(requestBody=multipart({
    "kind": {"type": "string", "enum": ["model_3d", "imaging", "document"]},
    "units": {"type": "string", "enum": list(UNITS), "default": "mm",
              "description": "units of a 3D model's coordinates"},
}, "The file and what it is: a 3D model (.stl .obj .ply .off .3mf), imaging (.zip .dcm "
   ".png .jpg) or a document (.pdf .png .jpg); its content is checked against its type."))
@blp.errors(409, 422)
def add_attachment(case_id: int) -> dict[str, Any]:
    """Upload a file (multipart: ``file``, ``kind`` = model_3d | imaging | document, ``units``)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Choose a file.", {"file": ["Choose a file to upload."]})
    attachment = svc.add_attachment(
        db.session, get_store(), actor=actor, case=case, stream=upload.stream,
        filename=upload.filename, kind=request.form.get("kind", ""),
        units=request.form.get("units", "mm") or "mm",
        max_bytes=current_app.config["MAX_CONTENT_LENGTH"], zip_limits=zip_limits())
    db.session.commit()
    return {"id": attachment.id, "sha256": attachment.file.sha256, "size": attachment.file.size,
            "media_type": attachment.file.media_type,
            "original_name": attachment.file.original_name, "kind": attachment.kind.value}


@blp.route("/<int:case_id>/attachments/<int:attachment_id>", methods=["DELETE"])
@requires(Permission.CREATE_REQUEST)
@blp.response(204)
@blp.errors(409)
def remove_attachment(case_id: int, attachment_id: int) -> None:
    """Remove a file from the draft (signed files stay on record)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.remove_attachment(db.session, actor=actor, case=case, attachment_id=attachment_id)
    db.session.commit()


@blp.route("/<int:case_id>/attachments/<int:attachment_id>/content", methods=["GET"])
@requires(Permission.VIEW_CASES)
@blp.doc(responses={200: binary_content(
    ATTACHMENT_MEDIA_TYPES, "The file as uploaded, in the media type its content was checked "
                            "to have.")})
@blp.errors(409, 500)
def download_attachment(case_id: int, attachment_id: int) -> Response:
    """The file's original bytes (verified against its SHA-256)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id)
    buffer, name, media_type = attachment_download(db.session, get_store(), case, attachment_id,
                                                   actor=actor, remote_addr=client_address())
    commit_read(db.session)  # audited before anything is sent; 503 if it cannot be
    from ..security.events import log_export

    log_export(actor_id=actor.id, actor_email=actor.email, what="attachment",
               target_type="attachment", target_id=attachment_id,
               size=buffer.getbuffer().nbytes)
    return send_file(buffer, mimetype=media_type, as_attachment=True, download_name=name)


@blp.route("/<int:case_id>/iterations", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
@blp.response(201)
@blp.alt_response(201, schema=IterationCreatedSchema, success=True)
@blp.doc(requestBody=multipart({
    "units": {"type": "string", "enum": list(UNITS), "default": "mm"},
    "notes": {"type": "string"},
}, "The design mesh (.stl .obj .ply .off .3mf) and its units."))
@blp.errors(409, 422)
def add_iteration(case_id: int) -> dict[str, Any]:
    """Upload a design iteration (multipart: ``file``, ``units``, ``notes``); the first one
    moves an accepted case to *in design*."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ValidationError("Choose a file.", {"file": ["Choose a mesh file to upload."]})
    iteration = svc.add_design_iteration(
        db.session, get_store(), actor=actor, case=case, stream=upload.stream,
        filename=upload.filename, units=request.form.get("units", "mm") or "mm",
        notes=request.form.get("notes", ""),
        max_bytes=current_app.config["MAX_CONTENT_LENGTH"], zip_limits=zip_limits())
    db.session.commit()
    return {"id": iteration.id, "number": iteration.number, "status": case.status.value,
            "sha256": iteration.file.sha256}


@blp.route("/<int:case_id>/iterations/<int:number>/verify", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
@blp.response(202)
@blp.alt_response(202, schema=JobSchema, success=True)
@blp.errors(409)
def verify_iteration(case_id: int, number: int) -> dict[str, Any]:
    """Queue verification of a design iteration against the approved envelope (a background
    job run by ``pdm worker``); poll ``GET /api/v1/cases/{id}/jobs/{job_id}``."""
    from ..services.verification import request_verification

    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    job = request_verification(db.session, actor=actor, case=case, number=number)
    db.session.commit()
    return job_view(job)


@blp.route("/<int:case_id>/iterations/<int:number>/confirmations", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
@blp.arguments(CharacteristicConfirmationSchema)
@blp.response(201)
@blp.alt_response(201, schema=CaseDetailSchema, success=True)
@blp.errors(409)
def confirm_characteristics(data: dict[str, Any], case_id: int, number: int) -> dict[str, Any]:
    """Custom-made and adaptable devices: confirm, item by item, that the latest design
    iteration meets each prescribed characteristic (``{"items": [{"item", "met", "note"}]}``;
    ``item`` as listed in ``characteristic_confirmations.items``). Needed before *verified*."""
    from ..services.confirmations import confirm

    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    confirm(db.session, actor=actor, case=case, number=number, items=data["items"])
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


def job_view(job: Any) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status.value,
            "progress": job.progress, "error": job.error, "result": (job.result or {}) and {
                k: v for k, v in job.result.items() if k != "traceback"},
            "created_at": job.created_at.isoformat(), "attempts": job.attempts}


@blp.route("/<int:case_id>/jobs/<int:job_id>", methods=["GET"])
@requires(Permission.VIEW_CASES)
@blp.alt_response(200, schema=JobSchema, success=True)
def get_job(case_id: int, job_id: int) -> dict[str, Any]:
    """A background job of the case (queued, running, succeeded, failed)."""
    from ..models import Job

    case = svc.get_case(db.session, require_actor(), case_id)
    job = db.session.get(Job, job_id) if 0 < job_id < 2**31 else None
    if job is None or job.case_id != case.id:
        from ..errors import NotFound

        raise NotFound("No such job on this case.")
    return job_view(job)


@blp.route("/<int:case_id>/submit", methods=["POST"])
@requires(Permission.CREATE_REQUEST)
@blp.arguments(SubmitSchema)
@blp.alt_response(200, schema=CaseDetailSchema, success=True)
@blp.errors(409, 429)
def submit(data: dict[str, Any], case_id: int) -> dict[str, Any]:
    """Sign (password required) and submit the draft request."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.transition(db.session, get_store(), actor=actor, case=case, target="submitted",
                   password=data["password"], totp_code=data["totp_code"],
                   pattern=_config_pattern())
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


@blp.route("/<int:case_id>/transitions", methods=["POST"])
@requires(Permission.ACT_ON_CASES)
@blp.arguments(TransitionSchema)
@blp.alt_response(200, schema=CaseDetailSchema, success=True)
@blp.errors(409, 429)
def transition(data: dict[str, Any], case_id: int) -> dict[str, Any]:
    """Take a workflow step (409 names the current state and what is allowed)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.transition(db.session, get_store(), actor=actor, case=case, target=data["to"],
                   reason=data["reason"], password=data["password"], totp_code=data["totp_code"],
                   delivered_on=data["delivered_on"], pattern=_config_pattern())
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


class AssignSchema(Schema):
    engineer_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))


@blp.route("/<int:case_id>/assignee", methods=["POST"])
@requires(Permission.ASSIGN_CASES)
@blp.arguments(AssignSchema)
@blp.alt_response(200, schema=CaseDetailSchema, success=True)
@blp.errors(409)
def assign(data: dict[str, Any], case_id: int) -> dict[str, Any]:
    """Reassign the case to another engineer (quality)."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.assign_engineer(db.session, actor=actor, case=case, engineer_id=data["engineer_id"])
    db.session.commit()
    return case_detail(db.session, actor, case, get_store())


@blp.route("/<int:case_id>/comments", methods=["POST"])
@requires(Permission.VIEW_CASES)
@blp.arguments(CommentSchema)
@blp.response(201)
@blp.alt_response(201, schema=CommentCreatedSchema, success=True)
def comment(data: dict[str, Any], case_id: int) -> dict[str, Any]:
    """Add to the conversation on the case."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    row = svc.add_comment(db.session, actor=actor, case=case, body=data["body"])
    db.session.commit()
    return {"id": row.id, "body": row.body, "created_at": row.created_at.isoformat()}
