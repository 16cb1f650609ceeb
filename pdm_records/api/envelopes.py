"""Design envelopes: versioned, approved with a signature, immutable after approval."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from ..access import require_actor, requires
from ..context import get_store
from ..extensions import db
from ..models import EnvelopeVersion
from ..permissions import Permission
from ..schemas import Text
from ..schemas.responses import EnvelopeListSchema, EnvelopeSchema
from ..services import envelopes as svc
from .docs import ApiBlueprint

PREFIX = "/envelopes"
blp = ApiBlueprint("api_envelopes", __name__, description="Design envelopes")


class EnvelopeDraftSchema(Schema):
    device_type_id = fields.Integer(required=True, validate=validate.Range(min=1, max=2**31 - 1))
    definition = fields.Dict(required=True)
    notes = Text(load_default="", validate=validate.Length(max=5000), multiline=True)


class EnvelopeUpdateSchema(Schema):
    definition = fields.Dict(required=True)


class ApproveSchema(Schema):
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256))
    totp_code = fields.String(load_default=None, load_only=True, validate=validate.Length(max=10))


def _dump(version: EnvelopeVersion) -> dict[str, Any]:
    return {"id": version.id, "device_type_id": version.device_type_id,
            "version": version.version, "status": version.status.value,
            "definition": version.definition, "notes": version.notes,
            "content_sha256": version.content_sha256, "author_id": version.author_id,
            "approved_by_id": version.approved_by_id,
            "approved_at": version.approved_at.isoformat() if version.approved_at else None}


@blp.route("", methods=["GET"])
@requires(Permission.VIEW_CATALOGUE)
@blp.alt_response(200, schema=EnvelopeListSchema, success=True)
def list_envelopes() -> dict[str, Any]:
    """Every envelope version, newest first per device type."""
    return {"items": [_dump(v) for v in svc.list_versions(db.session)]}


@blp.route("", methods=["POST"])
@requires(Permission.MANAGE_ENVELOPES)
@blp.arguments(EnvelopeDraftSchema)
@blp.response(201)
@blp.alt_response(201, schema=EnvelopeSchema, success=True)
def create_envelope(data: dict[str, Any]) -> dict[str, Any]:
    """Draft a new envelope version for a device type."""
    version = svc.create_draft(db.session, actor=require_actor(), **data)
    db.session.commit()
    return _dump(version)


@blp.route("/<int:version_id>", methods=["PATCH"])
@requires(Permission.MANAGE_ENVELOPES)
@blp.arguments(EnvelopeUpdateSchema)
@blp.alt_response(200, schema=EnvelopeSchema, success=True)
@blp.errors(409)
def update_envelope(data: dict[str, Any], version_id: int) -> dict[str, Any]:
    """Change a draft (409 once approved)."""
    version = svc.update_draft(db.session, actor=require_actor(),
                               version=svc.get_version(db.session, version_id, lock=True),
                               definition=data["definition"])
    db.session.commit()
    return _dump(version)


@blp.route("/<int:version_id>/approve", methods=["POST"])
@requires(Permission.MANAGE_ENVELOPES)
@blp.arguments(ApproveSchema)
@blp.alt_response(200, schema=EnvelopeSchema, success=True)
@blp.errors(409, 429)
def approve_envelope(data: dict[str, Any], version_id: int) -> dict[str, Any]:
    """Approve with your signature (not the author); supersedes the previous version."""
    version = svc.approve(db.session, get_store(), actor=require_actor(),
                          version=svc.get_version(db.session, version_id, lock=True),
                          password=data["password"], totp_code=data["totp_code"])
    db.session.commit()
    return _dump(version)
