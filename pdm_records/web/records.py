"""Quality staff's record pages: search and the case dossier (DOMAIN.md §1, §6)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Blueprint, render_template, request

from ..access import require_actor, requires
from ..audited_reads import client_address, commit_read
from ..context import get_store
from ..errors import ValidationError
from ..extensions import db
from ..models import (
    CaseStatus,
    DeviceCategory,
    DeviceType,
    EnvelopeVersion,
    RoleRow,
    Site,
    SiteKind,
    User,
    VerificationResult,
    roles_users,
)
from ..permissions import Permission, Role
from ..schemas.search import SORT_KEYS, CaseSearchSchema, SearchFilters
from ..services.dossier import open_dossier
from ..services.search import search_cases
from .forms import load_form

bp = Blueprint("records", __name__)


def _choices() -> dict[str, Any]:
    session = db.session
    clinicians = session.scalars(
        sa.select(User).join(roles_users, roles_users.c.user_id == User.id)
        .join(RoleRow, RoleRow.id == roles_users.c.role_id)
        .where(RoleRow.name == Role.CLINICIAN.value).order_by(User.printed_name))
    envelopes = session.execute(
        sa.select(EnvelopeVersion.id, EnvelopeVersion.version, DeviceType.name)
        .join(DeviceType, DeviceType.id == EnvelopeVersion.device_type_id)
        .where(EnvelopeVersion.approved_at.is_not(None))
        .order_by(DeviceType.name, EnvelopeVersion.version))
    return {
        "device_types": list(session.scalars(sa.select(DeviceType).order_by(DeviceType.name))),
        "categories": list(DeviceCategory), "statuses": list(CaseStatus),
        "verifications": list(VerificationResult), "sort_keys": SORT_KEYS,
        "clinicians": list(clinicians.unique()),
        "institutions": list(session.scalars(sa.select(Site).where(
            Site.kind == SiteKind.HEALTH_INSTITUTION).order_by(Site.name))),
        "envelopes": [{"id": i, "label": f"{name} v{version}"} for i, version, name in envelopes],
    }


@bp.route("/search")
@requires(Permission.VIEW_ALL_CASES)
def search() -> str | tuple[str, int]:
    """Search every case by the filters of ``schemas/search.py``; 400 names a bad field."""
    actor = require_actor()
    values: dict[str, Any] = {k: v for k, v in request.args.items() if k != "status"}
    values["status"] = request.args.getlist("status")
    try:
        filters: SearchFilters = load_form(CaseSearchSchema(), request.args, lists=("status",))
    except ValidationError as exc:
        page = render_template("records/search.html", result=None, filters=None,
                               values=values, errors=exc.field_errors, **_choices())
        return page, 400
    result = search_cases(db.session, actor, filters)
    return render_template("records/search.html", result=result, filters=filters,
                           values=values, errors={}, args=filters.query_args(), **_choices())


@bp.route("/<number>/dossier")
@requires(Permission.VIEW_ALL_CASES)
def dossier(number: str) -> str:
    """Everything about one case; opening it is an audited read (``case.dossier_viewed``)."""
    actor = require_actor()
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), 100_000)
    view = open_dossier(db.session, get_store(), actor=actor, number=number, audit_page=page,
                        remote_addr=client_address())
    commit_read(db.session)  # the read is on record before anything is shown (or 503)
    return render_template("records/dossier.html", d=view)
