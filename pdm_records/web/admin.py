"""Administration: accounts and configuration. No clinical records here."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from ..access import require_actor, requires
from ..config import SETTINGS
from ..errors import NotFound, ValidationError
from ..extensions import db
from ..models import Site, User
from ..permissions import ROLE_DESCRIPTIONS, Permission, Role
from ..schemas import UserCreateSchema
from ..services import catalogue
from ..services import users as user_service
from .forms import load_form

bp = Blueprint("admin", __name__)


@bp.route("/users")
@requires(Permission.MANAGE_USERS)
def users() -> str:
    page_no = request.args.get("page", 1, type=int) or 1
    page = db.paginate(sa.select(User).order_by(User.email), page=max(page_no, 1),
                       per_page=current_app.config["PDM_PAGE_SIZE"], error_out=False)
    from ..clock import utcnow

    return render_template("admin/users.html", page=page, now=utcnow())


@bp.route("/users/new", methods=["GET", "POST"])
@requires(Permission.MANAGE_USERS)
def new_user() -> Response | str | tuple[str, int]:
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            data = load_form(UserCreateSchema(), request.form, lists=("roles",))
            user = user_service.create_user(db.session, actor=require_actor(), **data)
            db.session.commit()
            flash(f"Account {user.email} created.", "success")
            return redirect(url_for("admin.users"))
        except ValidationError as exc:
            db.session.rollback()
            errors = exc.field_errors
    page = render_template("admin/user_new.html", errors=errors, form=request.form,
                           roles=list(Role), role_descriptions=ROLE_DESCRIPTIONS,
                           sites=catalogue.list_sites(db.session))
    return (page, 422) if errors else page


@bp.route("/users/<int:user_id>/active", methods=["POST"])
@requires(Permission.MANAGE_USERS)
def set_active(user_id: int) -> Response:
    user = user_service.get_user(db.session, user_id)
    active = request.form.get("active") == "1"
    user_service.set_active(db.session, actor=require_actor(), user=user, active=active)
    db.session.commit()
    flash(f"Account {user.email} {'activated' if active else 'deactivated'}.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/users/<int:user_id>/unlock", methods=["POST"])
@requires(Permission.MANAGE_USERS)
def unlock(user_id: int) -> Response:
    from ..security.events import security_event
    from ..services.auth import unlock as unlock_account

    actor = require_actor()
    user = user_service.get_user(db.session, user_id)
    unlock_account(db.session, actor=actor, user=user)
    db.session.commit()
    security_event("account.unlocked", user_id=user.id, email=user.email, by=actor.id)
    flash(f"Account {user.email} unlocked.", "success")
    return redirect(url_for("admin.users"))


# How the refusal of a reset names each field in its flash message (labels, no secrets).
RESET_FIELD_LABELS = {"reason": "Reason", "user": "Account",
                      "password": "Your password",  # nosec B105
                      "totp_code": "Your authenticator code"}
REAUTHENTICATION_HINTS = {
    "password": "enter your own current password.",  # nosec B105
    "totp_code": "enter the current 6-digit code from your own authenticator app."}


@bp.route("/users/<int:user_id>/reset-mfa", methods=["POST"])
@requires(Permission.MANAGE_USERS)
def reset_mfa(user_id: int) -> Response:
    """Reset another user's lost second factor; the administrator re-authenticates (password
    and authenticator code, as for signing). docs/security/authentication.md, *Lost
    authenticator*."""
    from ..security.events import security_event
    from ..services.auth import reset_second_factor
    from ..services.signatures import SigningAuthenticationFailed
    from .errors import note_security_error

    actor = require_actor()
    user = user_service.get_user(db.session, user_id)
    email = user.email
    try:
        done = reset_second_factor(
            db.session, actor=actor, user=user, reason=request.form.get("reason"),
            password=request.form.get("password") or None,
            totp_code=request.form.get("totp_code") or None)
        db.session.commit()
    except ValidationError as exc:
        db.session.rollback()
        note_security_error(exc)  # a wrong password or code: auth.failed, lock-out count
        security_event("mfa.reset", outcome="failure", level=logging.WARNING, user_id=user_id,
                       email=email, by=actor.id, refused=exc.message)
        message, errors = exc.message, exc.field_errors
        if isinstance(exc, SigningAuthenticationFailed):  # the wording of signing, adapted
            field = "password" if exc.kind == "password" else "totp_code"
            message = (f"{RESET_FIELD_LABELS[field]} is not correct; the second factor of "
                       f"{email} was not reset.")
            errors = {field: [REAUTHENTICATION_HINTS[field]]}
        details = "; ".join(f"{RESET_FIELD_LABELS.get(key, key)}: {m}"
                            for key, ms in errors.items() for m in ms)
        flash(message + (f" ({details})" if details else ""), "error")
        return redirect(url_for("admin.users"))
    security_event("mfa.reset", user_id=done.user_id, email=done.email, by=actor.id)
    flash(f"Two-factor sign-in of {done.email} reset: authenticator and "
          f"{done.recovery_codes_removed} recovery code(s) removed, their sessions ended. "
          "They set up a new authenticator app at their next sign-in.", "success")
    return redirect(url_for("admin.users"))


@bp.route("/sites", methods=["GET", "POST"])
@requires(Permission.MANAGE_CATALOGUE)
def sites() -> Response | str:
    if request.method == "POST":
        site = db.session.get(Site, request.form.get("site_id", type=int) or 0)
        if site is None:
            raise NotFound("No such site.")
        share = request.form.get("share_cases") == "1"
        catalogue.set_case_sharing(db.session, actor=require_actor(), site=site, share=share)
        db.session.commit()
        flash(f"{site.name}: clinicians {'now' if share else 'no longer'} see each other's "
              "cases.", "success")
        return redirect(url_for("admin.sites"))
    return render_template("admin/sites.html", sites=catalogue.list_sites(db.session))


@bp.route("/configuration")
@requires(Permission.VIEW_CONFIGURATION)
def configuration() -> str:
    hidden = {"PDM_SECRET_KEY"}
    rows = [(s.env, "(hidden)" if s.key in hidden else current_app.config.get(s.key), s.doc)
            for s in SETTINGS]
    return render_template("admin/configuration.html", rows=rows,
                           problems=current_app.extensions.get("pdm_config_problems", []))


@bp.route("/storage")
@requires(Permission.VIEW_STORAGE_INTEGRITY)
def storage_integrity() -> str:
    """Quarantined orphans and damaged records, as ``pdm reconcile --repair`` left them."""
    from ..services import reconcile

    return render_template("admin/storage.html", last=reconcile.last_run(db.session),
                           quarantined=reconcile.quarantine_list(db.session),
                           damaged=reconcile.damaged_list(db.session))
