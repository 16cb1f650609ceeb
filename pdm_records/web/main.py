"""The dashboard and the pages every signed-in user has."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for
from werkzeug.wrappers import Response

from ..access import current_actor, require_actor, requires
from ..extensions import db
from ..permissions import Permission
from ..services.dashboards import build_dashboard

bp = Blueprint("main", __name__)


@bp.route("/")
@requires(Permission.PUBLIC)
def index() -> Response | str:
    if current_actor() is None:
        return redirect(url_for("security.login"))
    return dashboard()


@bp.route("/dashboard")
@requires(Permission.AUTHENTICATED)
def dashboard() -> str:
    actor = require_actor()
    board = build_dashboard(db.session, actor)
    return render_template("dashboard.html", board=board)
