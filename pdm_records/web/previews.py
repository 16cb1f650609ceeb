"""The 3D preview of a design iteration: its page, the GLB and the legend (case visibility
rules: whoever may see the case may see its previews, nobody else, 404 otherwise)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from ..access import require_actor, requires
from ..context import get_store
from ..errors import NotFound
from ..extensions import db
from ..permissions import Permission
from ..services import requests as svc
from ..services.previews import iteration_preview, preview_document
from ..services.verification import latest_report, report_summary

bp = Blueprint("previews", __name__)


@bp.route("/<int:case_id>/iterations/<int:number>")
@requires(Permission.VIEW_CASES)
def iteration(case_id: int, number: int) -> str:
    """The iteration's page: the viewer, the legend and the verification summary."""
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id)
    it = next((i for i in case.iterations if i.number == number), None)
    if it is None:
        raise NotFound("No such design iteration on this case.")
    report = latest_report(db.session, it)
    return render_template("cases/iteration.html", case=case, iteration=it,
                           verification=report_summary(report) if report else None)


@bp.route("/<int:case_id>/iterations/<int:number>/preview.glb")
@requires(Permission.VIEW_CASES)
def glb(case_id: int, number: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id)
    preview, _ = iteration_preview(db.session, get_store(), case=case, number=number)
    body = preview.glb
    db.session.commit()  # keeps a preview built on demand (a derived cache, not a record)
    response = Response(body, mimetype="model/gltf-binary")
    response.headers["Content-Disposition"] = (
        f'inline; filename="{case.number}-iteration-{number}-preview.glb"')
    response.headers["ETag"] = f'"{preview.glb_sha256}"'
    return response


@bp.route("/<int:case_id>/iterations/<int:number>/preview.json")
@requires(Permission.VIEW_CASES)
def legend(case_id: int, number: int) -> Response:
    actor = require_actor()
    case = svc.get_case(db.session, actor, case_id)
    preview, report = iteration_preview(db.session, get_store(), case=case, number=number)
    document = preview_document(case, number, preview, report)
    db.session.commit()
    return jsonify(document)
