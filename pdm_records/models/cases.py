"""Pseudonymous patients and the case: the unit of record.

A case (``PDM-YYYY-NNNNNN``) owns its request revisions, attachments, design iterations,
verification reports and signatures. Patients are pseudonymous codes only (DOMAIN.md §7; MDR
Annex XIII §1 allows a numerical code): no name is ever stored here.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from .base import Base, JSONType, enum_column

if TYPE_CHECKING:
    from .catalogue import DeviceType, Site
    from .files import StoredFile
    from .users import User


class Patient(Base):
    __tablename__ = "patient"
    __table_args__ = (
        sa.UniqueConstraint("institution_id", "code"),
        # Search by code prefix, ``code LIKE 'ABC%'`` (services/search.py); text_pattern_ops
        # lets PostgreSQL use the index whatever the database collation.
        sa.Index("ix_patient_code_prefix", "code", postgresql_ops={"code": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(32))
    institution_id: Mapped[int] = mapped_column(sa.ForeignKey("site.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    institution: Mapped[Site] = relationship(lazy="joined")


class CaseStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CHANGES_REQUESTED = "changes_requested"
    IN_DESIGN = "in_design"
    VERIFIED = "verified"
    AWAITING_APPROVAL = "awaiting_approval"
    APPROVED = "approved"
    RELEASED = "released"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"


class VerificationResult(StrEnum):
    """The latest design iteration's latest verification result (what search filters on)."""

    NONE = "none"
    PASSED = "passed"
    FAILED = "failed"


class CaseNumberCounter(Base):
    """Last case number handed out per year; rows are locked while a number is allocated."""

    __tablename__ = "case_number_counter"

    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    last: Mapped[int] = mapped_column(default=0)


class Case(Base):
    __tablename__ = "case"
    # Indexes for the quality search's query mix (services/search.py, benchmarks/bench_search.py).
    __table_args__ = (
        sa.Index("ix_case_status_created_at", "status", "created_at"),
        sa.Index("ix_case_device_type_verification", "device_type_id", "verification_result",
                 "created_at"),
        sa.Index("ix_case_number_prefix", "number", postgresql_ops={"number": "text_pattern_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(sa.String(20), unique=True)
    status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus), index=True)
    patient_id: Mapped[int] = mapped_column(sa.ForeignKey("patient.id"), index=True)
    device_type_id: Mapped[int] = mapped_column(sa.ForeignKey("device_type.id"), index=True)
    institution_id: Mapped[int] = mapped_column(sa.ForeignKey("site.id"), index=True)
    prescriber_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"), index=True)
    # The engineer responsible for the design: whoever accepted the case; quality may reassign.
    assigned_engineer_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("user.id"), index=True, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Latest retention deadline over all the case's record objects (the retention issue keeps it).
    retain_until: Mapped[datetime | None] = mapped_column(default=None, index=True)
    released_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    delivered_on: Mapped[date | None] = mapped_column(default=None)
    # Kept by the verification service (a new iteration resets it to "none") so that search
    # filters on it without a correlated subquery per case. The dossier and ``pdm verify-case``
    # re-check the reports themselves.
    verification_result: Mapped[VerificationResult] = mapped_column(
        enum_column(VerificationResult), default=VerificationResult.NONE,
        server_default=VerificationResult.NONE.value)

    patient: Mapped[Patient] = relationship(lazy="joined")
    device_type: Mapped[DeviceType] = relationship(lazy="joined")
    institution: Mapped[Site] = relationship(lazy="joined")
    prescriber: Mapped[User] = relationship(lazy="joined", foreign_keys=[prescriber_id])
    assigned_engineer: Mapped[User | None] = relationship(
        lazy="joined", foreign_keys=[assigned_engineer_id])
    revisions: Mapped[list[RequestRevision]] = relationship(
        back_populates="case", order_by="RequestRevision.revision"
    )
    iterations: Mapped[list[DesignIteration]] = relationship(
        back_populates="case", order_by="DesignIteration.number"
    )
    transitions: Mapped[list[CaseTransition]] = relationship(order_by="CaseTransition.id")
    comments: Mapped[list[Comment]] = relationship(order_by="Comment.id")

    @property
    def current_revision(self) -> RequestRevision | None:
        live = [r for r in self.revisions if r.status is not RevisionStatus.SUPERSEDED]
        return live[-1] if live else (self.revisions[-1] if self.revisions else None)


class RevisionStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"
    SUPERSEDED = "superseded"


class RequestRevision(Base):
    """One version of the documented request (prescription / design input)."""

    __tablename__ = "request_revision"
    __table_args__ = (sa.UniqueConstraint("case_id", "revision"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    revision: Mapped[int]
    status: Mapped[RevisionStatus] = mapped_column(enum_column(RevisionStatus))
    content: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    content_sha256: Mapped[str | None] = mapped_column(sa.String(64), default=None)
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    supersedes_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("request_revision.id"), default=None
    )

    case: Mapped[Case] = relationship(back_populates="revisions")
    attachments: Mapped[list[Attachment]] = relationship(order_by="Attachment.id")
    created_by: Mapped[User] = relationship(lazy="joined")

    @property
    def live_attachments(self) -> list[Attachment]:
        return [a for a in self.attachments if a.removed_at is None]


class DesignIteration(Base):
    """A mesh the engineers produced for a case, based on one request revision."""

    __tablename__ = "design_iteration"
    __table_args__ = (sa.UniqueConstraint("case_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    number: Mapped[int]
    based_on_revision_id: Mapped[int] = mapped_column(sa.ForeignKey("request_revision.id"))
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    units: Mapped[str] = mapped_column(sa.String(8), default="mm")
    notes: Mapped[str] = mapped_column(sa.Text, default="")
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="iterations")
    file: Mapped[StoredFile] = relationship(lazy="joined")


class AttachmentKind(StrEnum):
    MODEL_3D = "model_3d"
    IMAGING = "imaging"
    DOCUMENT = "document"


class Attachment(Base):
    """A file attached to a request revision. Frozen (a record object) once the revision is
    signed; removable (``removed_at``) only while the revision is a draft."""

    __tablename__ = "attachment"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision_id: Mapped[int] = mapped_column(sa.ForeignKey("request_revision.id"), index=True)
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("stored_file.id"))
    kind: Mapped[AttachmentKind] = mapped_column(enum_column(AttachmentKind))
    units: Mapped[str | None] = mapped_column(sa.String(8), default=None)
    description: Mapped[str] = mapped_column(sa.String(500), default="")
    created_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    removed_at: Mapped[datetime | None] = mapped_column(default=None)

    file: Mapped[StoredFile] = relationship(lazy="joined")


class CaseTransition(Base):
    """The status history of a case: every workflow step, who took it, when and why."""

    __tablename__ = "case_transition"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    from_status: Mapped[CaseStatus | None] = mapped_column(
        enum_column(CaseStatus, name="transition_from"), default=None)
    to_status: Mapped[CaseStatus] = mapped_column(enum_column(CaseStatus, name="transition_to"))
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id"), default=None)
    actor_label: Mapped[str] = mapped_column(sa.String(300))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    signature_id: Mapped[int | None] = mapped_column(sa.ForeignKey("signature.id"),
                                                     default=None)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)


class Comment(Base):
    """The conversation between clinician and engineer on a case."""

    __tablename__ = "comment"

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    author_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    author: Mapped[User] = relationship(lazy="joined")


class CharacteristicConfirmation(Base):
    """The engineer's confirmation that one prescribed characteristic is met by one design
    iteration (custom-made and adaptable devices; MDR Annex XIII §1, MDCG 2021-3 Q6: the
    prescriber states the design characteristics). Rows are written once and never changed; a
    new design iteration needs its own confirmations."""

    __tablename__ = "characteristic_confirmation"
    __table_args__ = (sa.UniqueConstraint("iteration_id", "item"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(sa.ForeignKey("case.id"), index=True)
    iteration_id: Mapped[int] = mapped_column(sa.ForeignKey("design_iteration.id"), index=True)
    revision_id: Mapped[int] = mapped_column(sa.ForeignKey("request_revision.id"))
    # The item's key in the request (``design_parameters.plate_thickness``, ``material``…) and
    # the prescribed value as it stood in the signed revision.
    item: Mapped[str] = mapped_column(sa.String(200))
    prescribed: Mapped[Any] = mapped_column(JSONType)
    met: Mapped[bool]
    note: Mapped[str] = mapped_column(sa.Text, default="")
    confirmed_by_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id"))
    confirmed_at: Mapped[datetime] = mapped_column(default=utcnow)

    confirmed_by: Mapped[User] = relationship(lazy="joined")
