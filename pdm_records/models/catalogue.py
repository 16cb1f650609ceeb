"""Sites (health institutions, manufacturer sites) and the device-type catalogue."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from .base import Base, JSONType, enum_column


class SiteKind(StrEnum):
    HEALTH_INSTITUTION = "health_institution"
    MANUFACTURER = "manufacturer"


class Site(Base):
    __tablename__ = "site"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    kind: Mapped[SiteKind] = mapped_column(enum_column(SiteKind))
    address: Mapped[str] = mapped_column(sa.String(500), default="")
    country: Mapped[str] = mapped_column(sa.String(2), default="")
    # Clinicians of this institution see each other's cases (set by an administrator).
    share_cases: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceCategory(StrEnum):
    """IMDRF N49 categories (quoted in MDCG 2021-3)."""

    CUSTOM_MADE = "custom_made"
    PATIENT_MATCHED = "patient_matched"
    ADAPTABLE = "adaptable"


class DeviceType(Base):
    """A device type of the catalogue. ``implantable`` decides the retention class (IMDRF N58)."""

    __tablename__ = "device_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    category: Mapped[DeviceCategory] = mapped_column(enum_column(DeviceCategory))
    implantable: Mapped[bool]
    expected_lifetime_years: Mapped[int]
    description: Mapped[str] = mapped_column(sa.Text, default="")
    # Design parameters a request may state: [{"name", "unit", "description"}]; the envelope
    # (a later table) holds their ranges.
    parameters: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
