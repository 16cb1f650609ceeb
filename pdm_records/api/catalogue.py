from __future__ import annotations

from ..access import requires
from ..extensions import db
from ..models import DeviceType, Site
from ..permissions import Permission
from ..schemas import DeviceTypeSchema, SiteSchema
from ..services import catalogue
from .docs import ApiBlueprint

PREFIX = ""
blp = ApiBlueprint("api_catalogue", __name__, description="Sites and device types")


@blp.route("/device-types")
@requires(Permission.VIEW_CATALOGUE)
@blp.response(200, DeviceTypeSchema(many=True))
def device_types() -> list[DeviceType]:
    """The device-type catalogue."""
    return catalogue.list_device_types(db.session)


@blp.route("/sites")
@requires(Permission.VIEW_CATALOGUE)
@blp.response(200, SiteSchema(many=True))
def sites() -> list[Site]:
    """Health institutions and manufacturer sites."""
    return catalogue.list_sites(db.session)
