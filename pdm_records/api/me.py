from __future__ import annotations

from ..access import require_actor, requires
from ..models import User
from ..permissions import Permission
from ..schemas import UserSchema
from .docs import ApiBlueprint

PREFIX = "/me"
blp = ApiBlueprint("api_me", __name__, description="The authenticated account")


@blp.route("")
@requires(Permission.AUTHENTICATED)
@blp.response(200, UserSchema)
def me() -> User:
    """The account the bearer token belongs to."""
    return require_actor()
