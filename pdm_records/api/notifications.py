from __future__ import annotations

from typing import Any

from flask_smorest import Blueprint

from ..access import require_actor, requires
from ..extensions import db
from ..permissions import Permission
from ..services import requests as svc

PREFIX = "/notifications"
blp = Blueprint("api_notifications", __name__, description="Your notifications")


@blp.route("", methods=["GET"])
@requires(Permission.AUTHENTICATED)
def notifications() -> dict[str, Any]:
    """Your unread notifications, newest first."""
    rows = svc.unread_notifications(db.session, require_actor())
    return {"items": [{"id": n.id, "case_id": n.case_id, "message": n.message,
                       "created_at": n.created_at.isoformat()} for n in rows]}
