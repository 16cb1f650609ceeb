from __future__ import annotations

from typing import Any

from ..access import require_actor, requires
from ..extensions import db
from ..permissions import Permission
from ..schemas.responses import NotificationListSchema
from ..services import requests as svc
from .docs import ApiBlueprint

PREFIX = "/notifications"
blp = ApiBlueprint("api_notifications", __name__, description="Your notifications")


@blp.route("", methods=["GET"])
@requires(Permission.AUTHENTICATED)
@blp.alt_response(200, schema=NotificationListSchema, success=True)
def notifications() -> dict[str, Any]:
    """Your unread notifications, newest first."""
    rows = svc.unread_notifications(db.session, require_actor())
    return {"items": [{"id": n.id, "case_id": n.case_id, "message": n.message,
                       "created_at": n.created_at.isoformat()} for n in rows]}
