"""Case pages: lists, the request forms per category, the case page and its actions."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from ..access import actor_permissions, require_actor, requires
from ..api.cases import zip_limits
from ..audited_reads import client_address, commit_read
from ..context import get_store
from ..errors import DomainError, ValidationError
from ..extensions import db
from ..models import Case, CaseStatus, DeviceType, SiteKind
from ..permissions import Permission
from ..schemas.requests import IMAGING_MODALITIES, SIDES
from ..services import catalogue
from ..services import requests as svc
from ..services.case_views import attachment_download, case_detail
from .errors import note_security_error

bp = Blueprint("cases", __name__)
SORTS: dict[str, Any] = {"newest": Case.created_at.desc(), "oldest": Case.created_at.asc(),
                         "number": Case.number.asc(), "status": Case.status.asc()}
PARAM_FIELDS = ("design_parameters", "requested_parameters")


def _pattern() -> str:
    return str(current_app.config["PDM_PATIENT_CODE_PATTERN"])


def form_to_request(form: MultiDict[str, str]) -> dict[str, Any]:
    """HTML form → the request dict the service validates (numbers of parameters parsed)."""
    data: dict[str, Any] = {k: v for k, v in form.items()
                            if k != "csrf_token" and ":" not in k and v != ""}
    errors: dict[str, list[str]] = {}
    for field in PARAM_FIELDS:
        values: dict[str, float] = {}
        for key, raw in form.items():
            prefix, _, name = key.partition(":")
            if prefix != field or raw.strip() == "":
                continue
            try:
                values[name] = float(raw.replace(",", "."))
            except ValueError:
                errors.setdefault(key, []).append("Enter a number.")
        if values:
            data[field] = values
    if errors:
        raise ValidationError("Please correct the marked fields.", errors)
    return data


@bp.route("/")
@requires(Permission.VIEW_CASES)
def index() -> str:
    actor = require_actor()
    status = request.args.get("status") or None
    sort = request.args.get("sort", "newest")
    query = svc.visible_cases(actor)
    if status in {s.value for s in CaseStatus}:
        query = query.where(Case.status == CaseStatus(status))
    page = db.paginate(query.order_by(SORTS.get(sort, SORTS["newest"]), Case.id.desc()),
                       page=min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000),
                       per_page=current_app.config["PDM_PAGE_SIZE"], error_out=False)
    return render_template("cases/list.html", page=page, status=status, sort=sort,
                           statuses=list(CaseStatus), sorts=list(SORTS))


@bp.route("/new")
@requires(Permission.CREATE_REQUEST)
def choose_device_type() -> str:
    return render_template("cases/choose.html", device_types=[
        d for d in catalogue.list_device_types(db.session) if d.active])


def _form_context(device_type: DeviceType, **extra: Any) -> dict[str, Any]:
    actor = require_actor()
    institutions = [s for s in catalogue.list_sites(db.session)
                    if s.kind is SiteKind.HEALTH_INSTITUTION
                    and (actor.site_id is None or s.id == actor.site_id)]
    return {"device_type": device_type, "institutions": institutions, "sides": SIDES,
            "modalities": IMAGING_MODALITIES, "pattern": _pattern(), **extra}


@bp.route("/new/<int:device_type_id>", methods=["GET", "POST"])
@requires(Permission.CREATE_REQUEST)
def new(device_type_id: int) -> Response | str | tuple[str, int]:
    actor = require_actor()
    device_type = db.session.get(DeviceType, device_type_id)
    if device_type is None or not device_type.active:
        flash("Choose a device type from the catalogue.", "error")
        return redirect(url_for("cases.choose_device_type"))
    values: dict[str, Any] = {"institution_id": actor.site_id}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = dict(request.form)
        try:
            data = form_to_request(request.form)
            case = svc.create_case(db.session, actor=actor,
                                   data={**data, "device_type_id": device_type.id},
                                   pattern=_pattern())
            db.session.commit()
            flash(f"Draft {case.number} saved. Attach files, then sign and submit.", "success")
            return redirect(url_for("cases.detail", case_id=case.id))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.field_errors
    page = render_template("cases/form.html", **_form_context(
        device_type, values=values, errors=errors, case=None))
    return (page, 422) if errors else page


@bp.route("/<int:case_id>")
@requires(Permission.VIEW_CASES)
def detail(case_id: int) -> str:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id)
    from ..services.jobs import jobs_of_case

    jobs = jobs_of_case(db.session, case)
    engineers = (svc.engineers(db.session) if Permission.ASSIGN_CASES in actor_permissions(actor)
                 else [])
    package_key = None
    if Permission.EXPORT_PACKAGES in actor_permissions(actor):
        from ..signing_key import SigningKeyError, load_or_create, public_info

        try:
            package_key = public_info(load_or_create(current_app.config["PDM_SIGNING_KEY_PATH"]))
        except SigningKeyError:
            package_key = None  # pdm doctor reports it; exporting answers 503
    return render_template("cases/detail.html", case=case, jobs=jobs, engineers=engineers,
                           package_key=package_key,
                           refresh=any(j.status.value in ("queued", "running") for j in jobs),
                           view=case_detail(db.session, actor, case, get_store()), errors={})


@bp.route("/<int:case_id>/edit", methods=["GET", "POST"])
@requires(Permission.CREATE_REQUEST)
def edit(case_id: int) -> Response | str | tuple[str, int]:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=request.method == "POST")
    content = case.revisions[-1].content
    values: dict[str, Any] = {**content, "patient_code": case.patient.code}
    for field in PARAM_FIELDS:
        for name, number in (content.get(field) or {}).items():
            values[f"{field}:{name}"] = number
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = dict(request.form)
        try:
            svc.update_draft(db.session, actor=actor, case=case,
                             data=form_to_request(request.form), pattern=_pattern(),
                             replace=True)
            db.session.commit()
            flash("Draft saved.", "success")
            return redirect(url_for("cases.detail", case_id=case.id))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.field_errors
    page = render_template("cases/form.html", **_form_context(
        case.device_type, values=values, errors=errors, case=case))
    return (page, 422) if errors else page


FIELD_LABELS = {"body": "Comment", "file": "File", "totp_code": "Authenticator code"}


def _label(key: str) -> str:
    """``items.0.note`` → "Note"; ``body`` → "Comment"."""
    leaf = key.rsplit(".", 1)[-1]
    return FIELD_LABELS.get(leaf, leaf.replace("_", " ").capitalize())


def back_to_case(case_id: int, exc: DomainError | None = None) -> Response:
    """Back to the case page; a refusal is rolled back, recorded when it is a failed signing
    authentication, and flashed with each field named (the retention forms use it too)."""
    if exc is not None:
        db.session.rollback()
        note_security_error(exc)
        # The flash names each field, as a form re-rendered with its errors would.
        details = "; ".join(f"{_label(key)}: {m}" for key, ms in exc.field_errors.items()
                            for m in ms if m != exc.message)
        flash(exc.message + (f" ({details})" if details else ""), "error")
    return redirect(url_for("cases.detail", case_id=case_id))


@bp.route("/<int:case_id>/attachments", methods=["POST"])
@requires(Permission.CREATE_REQUEST)
def upload(case_id: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            raise ValidationError("Choose a file to upload.", {"file": ["Choose a file."]})
        attachment = svc.add_attachment(
            db.session, get_store(), actor=actor, case=case, stream=upload_file.stream,
            filename=upload_file.filename, kind=request.form.get("kind", ""),
            units=request.form.get("units", "mm") or "mm",
            max_bytes=current_app.config["MAX_CONTENT_LENGTH"], zip_limits=zip_limits(),
            description=request.form.get("description", ""))
        db.session.commit()
    except ValidationError as exc:
        return back_to_case(case_id, exc)
    flash(f"{attachment.file.original_name} attached.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/iterations", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
def upload_iteration(case_id: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    upload_file = request.files.get("file")
    try:
        if upload_file is None or not upload_file.filename:
            raise ValidationError("Choose a mesh file to upload.", {"file": ["Choose a file."]})
        iteration = svc.add_design_iteration(
            db.session, get_store(), actor=actor, case=case, stream=upload_file.stream,
            filename=upload_file.filename, units=request.form.get("units", "mm") or "mm",
            notes=request.form.get("notes", ""),
            max_bytes=current_app.config["MAX_CONTENT_LENGTH"], zip_limits=zip_limits())
        db.session.commit()
    except DomainError as exc:
        if exc.status in (403, 404, 409):
            raise
        return back_to_case(case_id, exc)
    flash(f"Design iteration #{iteration.number} uploaded.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/iterations/<int:number>/verify", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
def verify(case_id: int, number: int) -> Response:
    from ..services.verification import request_verification

    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    request_verification(db.session, actor=actor, case=case, number=number)
    db.session.commit()
    flash(f"Verification of design iteration #{number} is queued; this page refreshes until "
          "it is done.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/iterations/<int:number>/confirmations", methods=["POST"])
@requires(Permission.MANAGE_DESIGN)
def confirm(case_id: int, number: int) -> Response:
    """Custom-made and adaptable devices: the engineer confirms prescribed characteristics."""
    from marshmallow import ValidationError as SchemaError

    from ..schemas import flatten_messages
    from ..schemas.requests import CharacteristicConfirmationSchema
    from ..services.confirmations import confirm as confirm_items

    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    # One checkbox ``met:<item>`` and one note ``note:<item>`` per characteristic.
    items = [{"item": key.partition(":")[2], "met": request.form.get(key) == "yes",
              "note": request.form.get("note:" + key.partition(":")[2], "")}
             for key in request.form if key.startswith("met:")]
    try:
        try:
            data = CharacteristicConfirmationSchema().load({"items": items})
        except SchemaError as exc:
            raise ValidationError("Tick each characteristic the design meets.",
                                  flatten_messages(exc.messages)) from exc
        rows = confirm_items(db.session, actor=actor, case=case, number=number,
                             items=data["items"])
        db.session.commit()
    except DomainError as exc:
        if exc.status in (403, 404, 409):
            raise
        return back_to_case(case_id, exc)
    flash(f"{len(rows)} characteristic{'s' if len(rows) != 1 else ''} confirmed for design "
          f"iteration #{number}.", "success")
    return redirect(url_for("cases.detail", case_id=case_id) + "#confirmations")


@bp.route("/<int:case_id>/attachments/<int:attachment_id>/remove", methods=["POST"])
@requires(Permission.CREATE_REQUEST)
def remove_attachment(case_id: int, attachment_id: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    svc.remove_attachment(db.session, actor=actor, case=case, attachment_id=attachment_id)
    db.session.commit()
    flash("The file was removed from the draft.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/attachments/<int:attachment_id>")
@requires(Permission.VIEW_CASES)
def download(case_id: int, attachment_id: int) -> Response:
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


@bp.route("/<int:case_id>/package", methods=["POST"])
@requires(Permission.EXPORT_PACKAGES)
def export_package(case_id: int) -> Response:
    """Download the case's signed audit package (audited as ``case.exported``)."""
    from ..api.packages import send_package

    case = svc.get_case(db.session, require_actor(), case_id)
    return send_package([case])


@bp.route("/<int:case_id>/transition", methods=["POST"])
@requires(Permission.ACT_ON_CASES)
def transition(case_id: int) -> Response:
    from datetime import date

    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    target = request.form.get("to", "")
    delivered_raw = request.form.get("delivered_on", "")
    try:
        try:
            delivered = date.fromisoformat(delivered_raw) if delivered_raw else None
        except ValueError as exc:
            raise ValidationError("Enter the date as YYYY-MM-DD.",
                                  {"delivered_on": ["Enter a valid date."]}) from exc
        svc.transition(db.session, get_store(), actor=actor, case=case, target=target,
                       reason=request.form.get("reason", ""),
                       password=request.form.get("password") or None,
                       totp_code=request.form.get("totp_code") or None,
                       delivered_on=delivered, pattern=_pattern())
        db.session.commit()
    except DomainError as exc:
        if exc.status in (403, 404, 409):
            raise  # rendered as the error page with the reason (409 names what is allowed)
        return back_to_case(case_id, exc)
    flash(f"{case.number} is now {case.status.value.replace('_', ' ')}.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/assignee", methods=["POST"])
@requires(Permission.ASSIGN_CASES)
def assign(case_id: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    try:
        svc.assign_engineer(db.session, actor=actor, case=case,
                            engineer_id=request.form.get("engineer_id", type=int) or 0)
        db.session.commit()
    except ValidationError as exc:
        return back_to_case(case_id, exc)
    flash(f"{case.number} is assigned to another engineer.", "success")
    return back_to_case(case_id)


@bp.route("/<int:case_id>/comments", methods=["POST"])
@requires(Permission.VIEW_CASES)
def comment(case_id: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id, lock=True)
    try:
        from ..schemas.requests import CommentSchema
        from .forms import load_form

        data = load_form(CommentSchema(), request.form)
        svc.add_comment(db.session, actor=actor, case=case, body=data["body"])
        db.session.commit()
    except ValidationError as exc:
        return back_to_case(case_id, exc)
    return redirect(url_for("cases.detail", case_id=case_id) + "#comments")


@bp.route("/notifications", methods=["GET", "POST"])
@requires(Permission.AUTHENTICATED)
def notifications() -> Response | str:
    actor = require_actor()
    if request.method == "POST":
        svc.mark_notifications_read(db.session, actor)
        db.session.commit()
        return redirect(url_for("cases.notifications"))
    return render_template("cases/notifications.html",
                           items=svc.unread_notifications(db.session, actor, limit=100))
