"""Typed SQLAlchemy 2.0 tables. Alembic migrations are the only source of the schema."""

from .audit import AuditChainHead, AuditCheckpoint, AuditEvent
from .base import Base
from .cases import (
    Attachment,
    AttachmentKind,
    Case,
    CaseNumberCounter,
    CaseStatus,
    CaseTransition,
    CharacteristicConfirmation,
    Comment,
    DesignIteration,
    Patient,
    RequestRevision,
    RevisionStatus,
    VerificationResult,
)
from .catalogue import DeviceCategory, DeviceType, Site, SiteKind
from .envelopes import EnvelopeStatus, EnvelopeVersion, VerificationReport
from .files import FileState, StoredFile
from .jobs import Job, JobStatus
from .notifications import Notification
from .previews import DesignPreview
from .retention import DisposalItem, LegalHold, Tombstone, TombstoneState
from .signatures import Signature, SignatureMeaning
from .storage import DamagedRecord, QuarantinedObject
from .users import ApiToken, RoleRow, User, roles_users

__all__ = [
    "ApiToken",
    "Attachment",
    "AttachmentKind",
    "AuditChainHead",
    "AuditCheckpoint",
    "AuditEvent",
    "Base",
    "Case",
    "CaseNumberCounter",
    "CaseStatus",
    "CaseTransition",
    "CharacteristicConfirmation",
    "Comment",
    "DamagedRecord",
    "DesignIteration",
    "DesignPreview",
    "DeviceCategory",
    "DeviceType",
    "DisposalItem",
    "EnvelopeStatus",
    "EnvelopeVersion",
    "FileState",
    "Job",
    "JobStatus",
    "LegalHold",
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
    "Tombstone",
    "TombstoneState",
    "User",
    "VerificationReport",
    "VerificationResult",
    "roles_users",
]
