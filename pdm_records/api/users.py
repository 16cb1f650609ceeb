from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..access import require_actor, requires
from ..extensions import db
from ..models import User
from ..permissions import Permission
from ..schemas import PageQuerySchema, UserCreateSchema, UserSchema
from ..schemas.responses import UserPageSchema
from ..services import users as user_service
from .docs import ApiBlueprint
from .pages import page_of

PREFIX = "/users"
blp = ApiBlueprint("api_users", __name__, description="Accounts (administrators)")


@blp.route("", methods=["GET"])
@requires(Permission.MANAGE_USERS)
@blp.arguments(PageQuerySchema, location="query")
@blp.alt_response(200, schema=UserPageSchema, success=True)
def list_users(args: dict[str, Any]) -> dict[str, Any]:
    """Accounts, by e-mail, paginated."""
    return page_of(sa.select(User).order_by(User.email), args, UserSchema())


@blp.route("", methods=["POST"])
@requires(Permission.MANAGE_USERS)
@blp.arguments(UserCreateSchema)
@blp.response(201, UserSchema)
def create_user(data: dict[str, Any]) -> User:
    """Create an account with one or more roles."""
    user = user_service.create_user(db.session, actor=require_actor(), **data)
    db.session.commit()
    return user
