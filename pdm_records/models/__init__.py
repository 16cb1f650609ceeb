"""Typed SQLAlchemy 2.0 tables. Alembic migrations are the only source of the schema."""

from .audit import AuditEvent
from .base import Base
from .cases import (
    Case,
    CaseNumberCounter,
    CaseStatus,
    DesignIteration,
    Patient,
    RequestRevision,
    RevisionStatus,
)
from .catalogue import DeviceCategory, DeviceType, Site, SiteKind
from .files import FileState, StoredFile
from .users import ApiToken, RoleRow, User, roles_users

__all__ = [
    "ApiToken",
    "AuditEvent",
    "Base",
    "Case",
    "CaseNumberCounter",
    "CaseStatus",
    "DesignIteration",
    "DeviceCategory",
    "DeviceType",
    "FileState",
    "Patient",
    "RequestRevision",
    "RevisionStatus",
    "RoleRow",
    "Site",
    "SiteKind",
    "StoredFile",
    "User",
    "roles_users",
]
