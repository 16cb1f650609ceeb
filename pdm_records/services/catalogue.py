"""Sites and device types."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..errors import ValidationError
from ..models import DeviceCategory, DeviceType, Site, SiteKind, User
from . import DbSession
from .audit import record_event


def create_site(
    session: DbSession, *, actor: User | None, name: str, kind: SiteKind, address: str = "",
    country: str = "",
) -> Site:
    if session.scalar(sa.select(Site).where(Site.name == name)) is not None:
        raise ValidationError("The site could not be created.", {"name": ["This name is taken."]})
    site = Site(name=name, kind=kind, address=address, country=country)
    session.add(site)
    session.flush()
    record_event(session, actor=actor, action="site.created", target_type="site",
                 target_id=site.id, after={"name": name, "kind": kind, "address": address,
                                           "country": country})
    return site


def create_device_type(
    session: DbSession,
    *,
    actor: User | None,
    name: str,
    category: DeviceCategory,
    implantable: bool,
    expected_lifetime_years: int,
    parameters: list[dict[str, Any]],
    description: str = "",
) -> DeviceType:
    errors: dict[str, list[str]] = {}
    if session.scalar(sa.select(DeviceType).where(DeviceType.name == name)) is not None:
        errors["name"] = ["This name is taken."]
    if expected_lifetime_years < 1 or expected_lifetime_years > 100:
        errors["expected_lifetime_years"] = ["Give a lifetime between 1 and 100 years."]
    names = [p.get("name") for p in parameters]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        errors["parameters"] = ["Each parameter needs a unique name."]
    if errors:
        raise ValidationError("The device type could not be created.", errors)
    device_type = DeviceType(
        name=name, category=category, implantable=implantable,
        expected_lifetime_years=expected_lifetime_years, parameters=parameters,
        description=description,
    )
    session.add(device_type)
    session.flush()
    record_event(session, actor=actor, action="device_type.created", target_type="device_type",
                 target_id=device_type.id, after={
                     "name": name, "category": category, "implantable": implantable,
                     "expected_lifetime_years": expected_lifetime_years,
                     "parameters": parameters})
    return device_type


def set_case_sharing(session: DbSession, *, actor: User, site: Site, share: bool) -> None:
    """Let the clinicians of an institution see each other's cases (or stop it)."""
    if site.share_cases == share:
        return
    site.share_cases = share
    session.flush()
    record_event(session, actor=actor, action="site.case_sharing_changed", target_type="site",
                 target_id=site.id, before={"share_cases": not share},
                 after={"share_cases": share})


def list_device_types(session: DbSession) -> list[DeviceType]:
    return list(session.scalars(sa.select(DeviceType).order_by(DeviceType.name)))


def list_sites(session: DbSession) -> list[Site]:
    return list(session.scalars(sa.select(Site).order_by(Site.name)))
