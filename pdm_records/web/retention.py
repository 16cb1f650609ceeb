"""Retention pages for quality: expiries and holds, disposal, and the hold/dispose actions.

Views are thin: parse the form, call the retention service, commit, redirect. Disposal commits
after the tombstone is written and again after each deleted object (services.retention explains
why), so an interruption keeps what was done and a second run completes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, render_template, request
from werkzeug.wrappers import Response

from ..access import require_actor, requires
from ..clock import utcnow
from ..context import get_store
from ..errors import DomainError, ValidationError
from ..extensions import db
from ..models import Case, LegalHold
from ..permissions import Permission
from ..services import requests as cases_svc
from ..services import retention as svc
from .cases import back_to_case

bp = Blueprint("retention", __name__)
MAX_WITHIN_DAYS = 36_500


def _page() -> int:
    return min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)


@bp.route("/")
@requires(Permission.MANAGE_RETENTION)
def overview() -> str:
    now = utcnow()
    within = min(max(request.args.get("within_days", 90, type=int) or 90, 1), MAX_WITHIN_DAYS)
    expiring = db.paginate(svc.expiring_query(now, within), page=_page(),
                           per_page=current_app.config["PDM_PAGE_SIZE"], error_out=False)
    holds = list(db.session.scalars(svc.holds_query()))
    numbers: dict[int, str] = {
        row.id: row.number for row in db.session.execute(
            sa.select(Case.id, Case.number).where(Case.id.in_([h.case_id for h in holds])))}
    eligible = db.session.scalar(sa.select(sa.func.count()).select_from(
        svc.eligible_query(now).subquery())) or 0
    return render_template("retention/overview.html", now=now, within=within,
                           expiring=expiring, holds=holds, numbers=numbers, eligible=eligible,
                           policy=svc.current_policy().describe())


@bp.route("/disposal")
@requires(Permission.MANAGE_RETENTION)
def disposal() -> str:
    now = utcnow()
    page = db.paginate(svc.eligible_query(now), page=_page(),
                       per_page=current_app.config["PDM_PAGE_SIZE"], error_out=False)
    return render_template("retention/disposal.html", page=page, now=now)


def _back(case_id: int, exc: DomainError | None = None) -> Response:
    # A wrong password or code is recorded as a failed signing (lock-out, rate limit, audit).
    return back_to_case(case_id, exc)


@bp.route("/cases/<int:case_id>/dispose", methods=["POST"])
@requires(Permission.MANAGE_RETENTION)
def dispose(case_id: int) -> Response:
    actor = require_actor()
    case = cases_svc.get_case(db.session, actor, case_id, lock=True, disposal=True)
    store = get_store()
    try:
        tomb = svc.start_disposal(db.session, store, actor=actor, case=case,
                                  reason=request.form.get("reason", ""),
                                  password=request.form.get("password") or None,
            totp_code=request.form.get("totp_code") or None)
        db.session.commit()
    except ValidationError as exc:
        return _back(case_id, exc)
    tomb_id = tomb.id
    try:
        for _item in svc.run_disposal(db.session, store, actor=actor, tombstone=tomb):
            db.session.commit()
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        svc.record_interruption(db.session, actor=actor, tombstone_id=tomb_id,
                                message=exc.message)
        db.session.commit()
        raise
    flash(f"{case.number} was disposed; its tombstone is kept.", "success")
    return _back(case_id)


@bp.route("/cases/<int:case_id>/holds", methods=["POST"])
@requires(Permission.MANAGE_RETENTION)
def place_hold(case_id: int) -> Response:
    actor = require_actor()
    case = cases_svc.get_case(db.session, actor, case_id, lock=True)
    try:
        svc.place_hold(db.session, get_store(), actor=actor, case=case,
                       reason=request.form.get("reason", ""),
                       password=request.form.get("password") or None,
            totp_code=request.form.get("totp_code") or None)
        db.session.commit()
    except ValidationError as exc:
        return _back(case_id, exc)
    flash(f"Legal hold placed on {case.number}.", "success")
    return _back(case_id)


@bp.route("/cases/<int:case_id>/holds/<int:hold_id>/release", methods=["POST"])
@requires(Permission.MANAGE_RETENTION)
def release_hold(case_id: int, hold_id: int) -> Response:
    actor = require_actor()
    case = cases_svc.get_case(db.session, actor, case_id, lock=True)
    try:
        hold: LegalHold = svc.release_hold(
            db.session, get_store(), actor=actor, case=case, hold_id=hold_id,
            reason=request.form.get("reason", ""), password=request.form.get("password") or None,
            totp_code=request.form.get("totp_code") or None)
        db.session.commit()
    except ValidationError as exc:
        return _back(case_id, exc)
    flash(f"Legal hold #{hold.id} on {case.number} released.", "success")
    return _back(case_id)
