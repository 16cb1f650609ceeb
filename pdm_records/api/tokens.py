from __future__ import annotations

from typing import Any

from flask import current_app

from ..access import require_actor, requires
from ..extensions import db
from ..models import ApiToken
from ..permissions import Permission
from ..schemas import TokenCreatedSchema, TokenCreateSchema, TokenSchema
from ..services import users as user_service
from .docs import ApiBlueprint

PREFIX = "/tokens"
blp = ApiBlueprint("api_tokens", __name__, description="Your API bearer tokens")


@blp.route("", methods=["GET"])
@requires(Permission.AUTHENTICATED)
@blp.response(200, TokenSchema(many=True))
def list_tokens() -> list[ApiToken]:
    """Your tokens (secrets are never shown again)."""
    return user_service.list_tokens(db.session, require_actor())


@blp.route("", methods=["POST"])
@requires(Permission.AUTHENTICATED)
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
def create_token(data: dict[str, Any]) -> dict[str, Any]:
    """Create a token for yourself; the secret is in this response only."""
    actor = require_actor()
    token, secret = user_service.create_token(
        db.session, actor=actor, user=actor, name=data["name"],
        expiry_days=current_app.config["PDM_TOKEN_EXPIRY_DAYS"])
    db.session.commit()
    result = {name: getattr(token, name) for name in TokenSchema().fields}
    result["token"] = secret
    return result


@blp.route("/<int:token_id>", methods=["DELETE"])
@requires(Permission.AUTHENTICATED)
@blp.response(204)
def revoke_token(token_id: int) -> None:
    """Revoke one of your tokens (administrators: anyone's)."""
    user_service.revoke_token(db.session, actor=require_actor(), token_id=token_id)
    db.session.commit()
