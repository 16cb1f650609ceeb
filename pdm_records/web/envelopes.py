"""Design envelopes in the browser: quality drafts, edits, imports and approves (with a
signature) the versioned envelope of each device type (FDA AM guidance §V.B; IMDRF N58).

Views are thin: the envelope rules (who edits, who approves, immutability, supersession) live in
``services/envelopes.py`` and the limit rules in ``envelopes/limits.py``, shared with the API and
the CLI. This module only turns the HTML form into an envelope document and back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as BaseResponse

from ..access import require_actor, requires
from ..context import get_store
from ..envelopes import THICKNESS_STATISTICS
from ..errors import DomainError, NotFound, ValidationError
from ..extensions import db
from ..models import DeviceType, EnvelopeStatus, Signature, User
from ..permissions import Permission, Role
from ..services import envelopes as svc
from .errors import note_security_error

bp = Blueprint("envelopes", __name__)
MAX_IMPORT_BYTES = 256 * 1024


@dataclass(frozen=True)
class LimitField:
    """One geometric limit of the form: its key in the envelope document, label, unit, kind."""

    key: str
    label: str
    unit: str
    kind: str  # number | count | bool | extents | choice
    help: str = ""


GEOMETRY_FIELDS: tuple[LimitField, ...] = (
    LimitField("max_extents", "Max sorted extents", "mm", "extents",
               "largest first; compared with the part's sorted axis-aligned extents"),
    LimitField("max_diameter", "Max diameter", "mm", "number",
               "largest distance between two points of the convex hull"),
    LimitField("min_volume", "Min volume", "mm³", "number"),
    LimitField("max_volume", "Max volume", "mm³", "number"),
    LimitField("min_wall_thickness", "Min wall thickness", "mm", "number"),
    LimitField("max_wall_thickness", "Max wall thickness", "mm", "number"),
    LimitField("thickness_statistic", "Thickness statistic compared", "", "choice",
               "which ray-cast thickness statistic the wall limits apply to"),
    LimitField("watertight_required", "Watertight required", "", "bool",
               "every edge used by exactly two faces"),
    LimitField("max_bodies", "Max bodies", "", "count", "edge-connected face components"),
    LimitField("max_boundary_edges", "Max boundary edges", "", "count"),
    LimitField("max_non_manifold_edges", "Max non-manifold edges", "", "count"),
    LimitField("max_degenerate_faces", "Max degenerate faces", "", "count"),
    LimitField("no_self_intersections", "No self-intersections", "", "bool"),
    LimitField("max_overhang_area", "Max overhang area", "mm²", "number",
               "faces steeper than the overhang angle, relative to the file's −Z"),
    LimitField("overhang_angle_deg", "Overhang angle", "°", "number", "between 0 and 90"),
    LimitField("min_faces", "Min face count", "", "count"),
    LimitField("max_faces", "Max face count", "", "count"),
)
PARAMETER_KEYS = ("min", "max", "unit", "patient_adjustable")


def _number(raw: str, key: str, errors: dict[str, list[str]], *, whole: bool = False) -> Any:
    text = raw.strip().replace(",", ".")
    try:
        if whole:
            return int(text)
        return float(text)
    except ValueError:
        errors.setdefault(key, []).append("Enter a whole number." if whole else "Enter a number.")
        return None


def definition_from_form(
    form: MultiDict[str, str], parameters: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The posted form as an envelope document, and the fields that are not numbers at all.
    Everything else (ranges, signs, min ≤ max) is checked by the service, like the API's."""
    definition: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for spec in GEOMETRY_FIELDS:
        if spec.kind == "bool":
            if form.get(spec.key) == "1":
                definition[spec.key] = True
        elif spec.kind == "extents":
            parts = [form.get(f"{spec.key}.{i}", "").strip() for i in range(3)]
            if any(parts) and not all(parts):
                errors.setdefault(spec.key, []).append(
                    "Enter all three extents (largest first), or none.")
            elif all(parts):
                values = [_number(r, spec.key, errors) for r in parts]
                if all(v is not None for v in values):
                    definition[spec.key] = values
        elif spec.kind == "choice":
            if form.get(spec.key, "").strip():
                definition[spec.key] = form.get(spec.key, "").strip()
        elif form.get(spec.key, "").strip():
            value = _number(form.get(spec.key, ""), spec.key, errors,
                            whole=spec.kind == "count")
            if value is not None:
                definition[spec.key] = value
    ranges: dict[str, Any] = {}
    for parameter in parameters:
        name = parameter["name"]
        prefix = f"parameters.{name}"
        low, high = form.get(f"{prefix}.min", "").strip(), form.get(f"{prefix}.max", "").strip()
        adjustable = form.get(f"{prefix}.patient_adjustable") == "1"
        if not (low or high or adjustable):
            continue
        spec_out: dict[str, Any] = {"unit": form.get(f"{prefix}.unit", "").strip(),
                                    "patient_adjustable": adjustable}
        for key, raw in (("min", low), ("max", high)):
            if raw:
                spec_out[key] = _number(raw, f"{prefix}.{key}", errors)
        ranges[name] = spec_out
    if ranges:
        definition["parameters"] = ranges
    return definition, errors


def form_values(definition: dict[str, Any], parameters: list[dict[str, Any]]) -> dict[str, str]:
    """An envelope document as the form's field values."""
    values: dict[str, str] = {}
    for spec in GEOMETRY_FIELDS:
        value = definition.get(spec.key)
        if value is None:
            continue
        if spec.kind == "bool":
            values[spec.key] = "1" if value else ""
        elif spec.kind == "extents":
            for i, v in enumerate(value):
                values[f"{spec.key}.{i}"] = f"{v:g}"
        elif spec.kind == "choice":
            values[spec.key] = str(value)
        else:
            values[spec.key] = f"{value:g}" if isinstance(value, float) else str(value)
    ranges = definition.get("parameters") or {}
    for parameter in parameters:
        name = parameter["name"]
        spec_in = ranges.get(name) or {}
        prefix = f"parameters.{name}"
        values[f"{prefix}.unit"] = str(spec_in.get("unit") or parameter.get("unit") or "")
        for key in ("min", "max"):
            if spec_in.get(key) is not None:
                values[f"{prefix}.{key}"] = f"{spec_in[key]:g}"
        values[f"{prefix}.patient_adjustable"] = "1" if spec_in.get("patient_adjustable") else ""
    return values


def form_errors(field_errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """Service field names (``definition.max_extents[1]``) → form field names."""
    out: dict[str, list[str]] = {}
    for key, messages in field_errors.items():
        name = key.removeprefix("definition.").split("[", 1)[0]
        out.setdefault(name, []).extend(messages)
    return out


def _device_type(device_type_id: int) -> DeviceType:
    device_type = db.session.get(DeviceType, device_type_id) if 0 < device_type_id < 2**31 \
        else None
    if device_type is None:
        raise NotFound("No such device type.")
    return device_type


def _names(ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(sa.select(User.id, User.printed_name).where(
        User.id.in_(wanted))).tuples().all())


@bp.route("/")
@requires(Permission.VIEW_CATALOGUE)
def index() -> str:
    page_no = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    page = db.paginate(sa.select(DeviceType).order_by(DeviceType.name), page=page_no,
                       per_page=current_app.config["PDM_PAGE_SIZE"], error_out=False)
    versions = svc.versions_of(db.session, [d.id for d in page.items])
    people: set[int | None] = {v.author_id for vs in versions.values() for v in vs}
    people |= {v.approved_by_id for vs in versions.values() for v in vs}
    names = _names(people)
    return render_template("envelopes/index.html", page=page, versions=versions, names=names)


@bp.route("/device-types/<int:device_type_id>/drafts", methods=["POST"])
@requires(Permission.MANAGE_ENVELOPES)
def new_draft(device_type_id: int) -> BaseResponse:
    version = svc.start_draft(db.session, actor=require_actor(), device_type_id=device_type_id,
                              copy_approved=request.form.get("source") == "approved")
    db.session.commit()
    flash(f"Draft version {version.version} created; edit it, then ask another quality user to "
          "approve it.", "success")
    return redirect(url_for("envelopes.edit", version_id=version.id))


@bp.route("/versions/<int:version_id>/edit", methods=["GET", "POST"])
@requires(Permission.MANAGE_ENVELOPES)
def edit(version_id: int) -> BaseResponse | str | tuple[str, int]:
    actor = require_actor()
    version = svc.get_version(db.session, version_id, lock=request.method == "POST")
    svc.check_editable(actor, version)  # 409 once approved, 403 for anyone but the author
    device_type = _device_type(version.device_type_id)
    parameters = device_type.parameters
    values = {**form_values(version.definition, parameters), "notes": version.notes}
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        values = dict(request.form)
        definition, errors = definition_from_form(request.form, parameters)
        try:
            if errors:  # mark the fields the service would refuse too, then refuse
                svc.parse_definition(definition)
            else:
                svc.update_draft(db.session, actor=actor, version=version,
                                 definition=definition, notes=request.form.get("notes", ""))
                db.session.commit()
                flash(f"Draft version {version.version} saved.", "success")
                return redirect(url_for("envelopes.view", version_id=version.id))
        except ValidationError as exc:
            for key, messages in form_errors(exc.field_errors).items():
                errors.setdefault(key, []).extend(messages)
        db.session.rollback()
    page = render_template("envelopes/edit.html", version=version, device_type=device_type,
                           values=values, errors=errors, fields=GEOMETRY_FIELDS,
                           statistics=THICKNESS_STATISTICS)
    return (page, 422) if errors else page


@bp.route("/versions/<int:version_id>")
@requires(Permission.VIEW_CATALOGUE)
def view(version_id: int) -> str:
    actor = require_actor()
    version = svc.get_version(db.session, version_id)
    device_type = _device_type(version.device_type_id)
    replaced, replaced_by = svc.supersession(db.session, version)
    signature = (db.session.get(Signature, version.signature_id)
                 if version.signature_id else None)
    is_quality = Role.QUALITY in actor.role_names
    return render_template(
        "envelopes/view.html", version=version, device_type=device_type,
        names=_names({version.author_id, version.approved_by_id}), signature=signature,
        signature_status=svc.signature_status(db.session, get_store(), version),
        replaced=replaced, replaced_by=replaced_by, fields=GEOMETRY_FIELDS,
        units={p["name"]: p.get("unit", "") for p in device_type.parameters},
        can_edit=is_quality and version.status is EnvelopeStatus.DRAFT
        and version.author_id == actor.id,
        can_approve=is_quality and version.status is EnvelopeStatus.DRAFT
        and version.author_id != actor.id)


@bp.route("/versions/<int:version_id>/approve", methods=["POST"])
@requires(Permission.MANAGE_ENVELOPES)
def approve(version_id: int) -> BaseResponse:
    version = svc.get_version(db.session, version_id, lock=True)
    try:
        svc.approve(db.session, get_store(), actor=require_actor(), version=version,
                    password=request.form.get("password") or None,
                    totp_code=request.form.get("totp_code") or None)
        db.session.commit()
    except DomainError as exc:
        if exc.status != 422:
            raise  # 403 (the author), 409 (not a draft) render as the error page
        db.session.rollback()
        note_security_error(exc)  # a wrong password or code is a failed signing: recorded
        flash(exc.message, "error")
        return redirect(url_for("envelopes.view", version_id=version_id))
    flash(f"Envelope version {version.version} approved and signed; it is now read-only and "
          "used for every new verification.", "success")
    return redirect(url_for("envelopes.view", version_id=version_id))


@bp.route("/versions/<int:version_id>/download")
@requires(Permission.VIEW_CATALOGUE)
def download(version_id: int) -> Response:
    fmt = request.args.get("format", "yaml")
    if fmt not in svc.EXPORT_FORMATS:
        raise ValidationError("Choose yaml or json.", {"format": ["Choose yaml or json."]})
    version = svc.get_version(db.session, version_id)
    body = svc.export_document(version, fmt)
    name = f"envelope-{version.device_type_id}-v{version.version}.{fmt}"
    media_type = "application/json" if fmt == "json" else "application/yaml"
    return Response(body, mimetype=media_type, headers={
        "Content-Disposition": f'attachment; filename="{name}"'})


@bp.route("/import", methods=["GET", "POST"])
@requires(Permission.MANAGE_ENVELOPES)
def import_draft() -> BaseResponse | str | tuple[str, int]:
    """A YAML or JSON file (as ``pdm envelope export`` writes it) becomes a new draft."""
    errors: dict[str, list[str]] = {}
    message = ""
    selected = request.values.get("device_type_id", type=int)
    if request.method == "POST":
        upload = request.files.get("file")
        try:
            if upload is None or not upload.filename:
                raise ValidationError("Choose a file.", {"file": ["Choose a YAML or JSON file."]})
            raw = upload.stream.read(MAX_IMPORT_BYTES + 1)
            if len(raw) > MAX_IMPORT_BYTES:
                raise ValidationError("The file is too large.", {"file": [
                    f"An envelope document is at most {MAX_IMPORT_BYTES // 1024} KiB."]})
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValidationError("The file is not UTF-8 text.", {
                    "file": ["Save the file as UTF-8 text."]}) from exc
            definition = svc.parse_document(text, svc.document_format(upload.filename))
            version = svc.create_draft(db.session, actor=require_actor(),
                                       device_type_id=selected or 0, definition=definition,
                                       notes=request.form.get("notes", ""))
            db.session.commit()
            flash(f"Imported {upload.filename} as draft version {version.version}.", "success")
            return redirect(url_for("envelopes.view", version_id=version.id))
        except ValidationError as exc:
            db.session.rollback()
            errors, message = exc.field_errors or {"file": [exc.message]}, exc.message
    device_types = list(db.session.scalars(sa.select(DeviceType).order_by(DeviceType.name)))
    page = render_template("envelopes/import.html", device_types=device_types,
                           selected=selected, errors=errors, message=message,
                           notes=request.form.get("notes", ""))
    return (page, 422) if errors else page
