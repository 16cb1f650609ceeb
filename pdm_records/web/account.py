"""The signed-in user's own account: profile and API tokens."""

from __future__ import annotations

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..access import require_actor, requires
from ..errors import ValidationError
from ..extensions import db
from ..permissions import Permission
from ..schemas import TokenCreateSchema
from ..services import users as user_service
from .forms import load_form

bp = Blueprint("account", __name__)


@bp.route("/")
@requires(Permission.AUTHENTICATED)
def profile() -> str:
    return render_template("account/profile.html")


@bp.route("/tokens", methods=["GET", "POST"])
@requires(Permission.AUTHENTICATED)
def tokens() -> str | tuple[str, int]:
    actor = require_actor()
    new_secret = None
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            data = load_form(TokenCreateSchema(), request.form)
            _, new_secret = user_service.create_token(
                db.session, actor=actor, user=actor, name=data["name"],
                expiry_days=current_app.config["PDM_TOKEN_EXPIRY_DAYS"])
            db.session.commit()
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.field_errors
    page = render_template("account/tokens.html", tokens=user_service.list_tokens(
        db.session, actor), new_secret=new_secret, errors=errors, form=request.form)
    return (page, 422) if errors else page


@bp.route("/tokens/<int:token_id>/revoke", methods=["POST"])
@requires(Permission.AUTHENTICATED)
def revoke_token(token_id: int) -> Response:
    user_service.revoke_token(db.session, actor=require_actor(), token_id=token_id)
    db.session.commit()
    flash("The token was revoked.", "success")
    return redirect(url_for("account.tokens"))
