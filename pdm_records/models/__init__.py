"""Typed SQLAlchemy 2.0 tables. Alembic migrations are the only source of the schema."""

from .audit import AuditEvent
from .base import Base
from .cases import (
    Attachment,
    AttachmentKind,
    Case,
    CaseNumberCounter,
    CaseStatus,
    CaseTransition,
    Comment,
    DesignIteration,
    Patient,
    RequestRevision,
    RevisionStatus,
)
from .catalogue import DeviceCategory, DeviceType, Site, SiteKind
from .envelopes import EnvelopeStatus, EnvelopeVersion, VerificationReport
from .files import FileState, StoredFile
from .jobs import Job, JobStatus
from .notifications import Notification
from .signatures import Signature, SignatureMeaning
from .storage import DamagedRecord, QuarantinedObject
from .users import ApiToken, RoleRow, User, roles_users

__all__ = [
    "ApiToken",
    "Attachment",
    "AttachmentKind",
    "AuditEvent",
    "Base",
    "Case",
    "CaseNumberCounter",
    "CaseStatus",
    "CaseTransition",
    "Comment",
    "DamagedRecord",
    "DesignIteration",
    "DeviceCategory",
    "DeviceType",
    "EnvelopeStatus",
    "EnvelopeVersion",
    "FileState",
    "Job",
    "JobStatus",
    "Notification",
    "Patient",
    "QuarantinedObject",
    "RequestRevision",
    "RevisionStatus",
    "RoleRow",
    "Signature",
    "SignatureMeaning",
    "Site",
    "SiteKind",
    "StoredFile",
    "User",
    "VerificationReport",
    "roles_users",
]
