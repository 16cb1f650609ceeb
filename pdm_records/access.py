"""Who is acting, and may they? One decorator for every view and API operation.

``@requires(Permission.X)`` marks the view (the route × role test reads the mark) and checks it on
each call. The actor is the bearer-token owner on ``/api/`` routes (the API ignores session
cookies, so it needs no CSRF token) and the signed-in session user everywhere else.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import g, request
from flask_security import current_user

from .errors import Forbidden, Unauthorized
from .models import User
from .permissions import Permission, permissions_for

F = TypeVar("F", bound=Callable[..., Any])
PERMISSION_ATTR = "pdm_permission"

# Endpoints registered by libraries (Flask itself, Flask-Security-Too, flask-smorest) and the
# permission they amount to. The route × role test holds these too.
LIBRARY_ENDPOINTS: dict[str, Permission] = {
    "static": Permission.PUBLIC,
    "security.static": Permission.PUBLIC,
    "security.login": Permission.PUBLIC,
    "security.logout": Permission.PUBLIC,
    "security.verify": Permission.AUTHENTICATED,
    "security.change_password": Permission.AUTHENTICATED,
    # Two-factor steps: reached mid-sign-in (the session holds the password-verified user,
    # Flask-Security refuses any other state) or signed in (changing one's own factor).
    "security.two_factor_setup": Permission.PUBLIC,
    "security.two_factor_token_validation": Permission.PUBLIC,
    "security.two_factor_rescue": Permission.PUBLIC,
    "security.tf_select": Permission.PUBLIC,
    "security.mf_recovery": Permission.PUBLIC,
    "security.two_factor_setup_validate": Permission.AUTHENTICATED,
    "security.mf_recovery_codes": Permission.AUTHENTICATED,
    "api-docs.openapi_json": Permission.PUBLIC,
}


def is_api_request() -> bool:
    return request.path.startswith("/api/")


def current_actor() -> User | None:
    """The acting user of this request, or None when anonymous."""
    if "pdm_actor" in g:
        return cast(User | None, g.pdm_actor)
    actor: User | None = None
    if is_api_request():
        header = request.headers.get("Authorization", "")
        scheme, _, secret = header.partition(" ")
        if scheme.lower() == "bearer" and secret.strip():
            from .extensions import db
            from .services.users import authenticate_token

            actor = authenticate_token(db.session, secret.strip())
            if actor is not None:
                db.session.commit()  # last_used_at
                from .security.mfa import is_enrolled, mfa_required

                if mfa_required(actor) and not is_enrolled(actor):
                    actor = None  # must enrol two-factor in the browser first
    elif current_user.is_authenticated:
        actor = cast(User, current_user._get_current_object())
    g.pdm_actor = actor
    return actor


def actor_permissions(actor: User | None) -> frozenset[Permission]:
    if actor is None:
        return frozenset({Permission.PUBLIC})
    return permissions_for(actor.role_names)


def require_actor() -> User:
    actor = current_actor()
    if actor is None:
        raise Unauthorized("Sign in to continue." if not is_api_request() else
                           "Send a valid bearer token: Authorization: Bearer <token>.")
    return actor


def requires(permission: Permission) -> Callable[[F], F]:
    """Declare and enforce the permission a view needs."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if permission is not Permission.PUBLIC:
                actor = require_actor()
                if permission not in actor_permissions(actor):
                    raise Forbidden("Your role does not allow this action.")
            return view(*args, **kwargs)

        setattr(wrapper, PERMISSION_ATTR, permission)
        return cast(F, wrapper)

    return decorate


def endpoint_permission(view: Callable[..., Any]) -> Permission | None:
    """The permission a view function declares (following smorest/functools wrappers)."""
    seen = 0
    current: Any = view
    while current is not None and seen < 10:
        perm = getattr(current, PERMISSION_ATTR, None)
        if perm is not None:
            return cast(Permission, perm)
        current = getattr(current, "__wrapped__", None)
        seen += 1
    return None
