"""Design envelopes as controlled documents (FDA AM guidance §V.B; IMDRF N58).

A version is drafted by quality, approved with a signature (meaning *envelope approval*) by a
quality user who is not its author, and is immutable from then on; approving a new version
supersedes the previous one. Verifications name the exact version and its content hash, so a
supersession never invalidates an earlier verification.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from ..clock import utcnow
from ..envelopes import EnvelopeError, EnvelopeLimits
from ..errors import Conflict, Forbidden, NotFound, ValidationError
from ..models import (
    DeviceType,
    EnvelopeStatus,
    EnvelopeVersion,
    SignatureMeaning,
    User,
)
from ..permissions import Role
from ..retention import IMPLANTABLE_YEARS, add_years
from ..storage import ObjectStore
from . import DbSession
from .audit import record_event
from .signatures import sign


def parse_definition(definition: Any) -> dict[str, Any]:
    """Validate an envelope document; return its canonical form (or a field-named 422)."""
    try:
        return EnvelopeLimits.from_dict(definition).to_dict()
    except EnvelopeError as exc:
        raise ValidationError(f"The envelope is not valid: {exc}",
                              {f"definition.{exc.field}": [str(exc)]}) from exc


def _checked(device_type: DeviceType, definition: Any) -> dict[str, Any]:
    canonical = parse_definition(definition)
    known = {p["name"] for p in device_type.parameters}
    unknown = sorted(set(canonical.get("parameters", {})) - known)
    if unknown:
        raise ValidationError("The envelope names unknown parameters.", {
            "definition.parameters": [f"Unknown for {device_type.name}: {', '.join(unknown)}."]})
    return canonical


def approved_definition(session: DbSession, version: EnvelopeVersion) -> dict[str, Any]:
    """The definition as it was signed at approval, checked against its hashes.

    Raises :class:`Conflict` (and the caller should not proceed) when the stored definition
    differs from what was approved: an approved envelope that changed is not to be used.
    """
    from ..canonical import canonical_sha256
    from ..models import Signature

    signature = session.get(Signature, version.signature_id) if version.signature_id else None
    if (signature is None or version.content_sha256 is None
            or canonical_sha256(signature.signed_record) != signature.content_sha256
            or signature.content_sha256 != version.content_sha256
            or signature.signed_record.get("definition") != version.definition):
        raise Conflict(f"Envelope version {version.version} does not match what was approved; "
                       "it cannot be used. Quality must investigate (see the audit trail).")
    definition: dict[str, Any] = signature.signed_record["definition"]
    return definition


def _require_quality(actor: User) -> None:
    if Role.QUALITY not in actor.role_names:
        raise Forbidden("Only quality staff draft and approve design envelopes.")


def create_draft(
    session: DbSession, *, actor: User, device_type_id: int, definition: Any, notes: str = "",
) -> EnvelopeVersion:
    _require_quality(actor)
    device_type = session.get(DeviceType, device_type_id) if 0 < device_type_id < 2**31 \
        else None
    if device_type is None:
        raise ValidationError("Choose a device type.", {"device_type_id": ["No such device type."]})
    canonical = _checked(device_type, definition)
    # Lock the device type row so two drafts do not race for the same version number.
    session.scalar(sa.select(DeviceType).where(DeviceType.id == device_type.id)
                   .with_for_update())
    last = session.scalar(sa.select(sa.func.max(EnvelopeVersion.version)).where(
        EnvelopeVersion.device_type_id == device_type.id)) or 0
    version = EnvelopeVersion(device_type_id=device_type.id, version=last + 1,
                              status=EnvelopeStatus.DRAFT, definition=canonical,
                              notes=notes.strip()[:5000], author_id=actor.id)
    session.add(version)
    session.flush()
    record_event(session, actor=actor, action="envelope.drafted", target_type="envelope_version",
                 target_id=version.id, after={"device_type_id": device_type.id,
                                              "version": version.version,
                                              "definition": canonical})
    return version


def update_draft(session: DbSession, *, actor: User, version: EnvelopeVersion,
                 definition: Any) -> EnvelopeVersion:
    """Change a draft. Only its author may: the approver must be someone who wrote none of it."""
    _require_quality(actor)
    if version.status is not EnvelopeStatus.DRAFT:
        raise Conflict(f"Envelope version {version.version} is {version.status.value}; an "
                       "approved envelope cannot be edited. Draft a new version instead.")
    if version.author_id != actor.id:
        raise Forbidden("Only the author edits a draft envelope; draft your own version "
                        "instead (the approver must not have written any of it).")
    device_type = session.get(DeviceType, version.device_type_id)
    assert device_type is not None
    before = version.definition
    version.definition = _checked(device_type, definition)
    session.flush()
    record_event(session, actor=actor, action="envelope.draft_saved",
                 target_type="envelope_version", target_id=version.id,
                 before={"definition": before}, after={"definition": version.definition})
    return version


def envelope_record(version: EnvelopeVersion, device_type: DeviceType) -> dict[str, Any]:
    return {"record_type": "envelope_version", "device_type": {
                "id": device_type.id, "name": device_type.name,
                "category": device_type.category.value},
            "version": version.version, "definition": version.definition,
            "notes": version.notes}


def approve(
    session: DbSession, store: ObjectStore, *, actor: User, version: EnvelopeVersion,
    password: str | None, now: datetime | None = None, totp_code: str | None = None,
) -> EnvelopeVersion:
    """Approve a draft with a signature; the previous approved version is superseded."""
    _require_quality(actor)
    now = now or utcnow()
    if version.status is not EnvelopeStatus.DRAFT:
        raise Conflict(f"Envelope version {version.version} is {version.status.value}; only a "
                       "draft can be approved.")
    if version.author_id == actor.id:
        raise Forbidden("The author of an envelope cannot approve it; another quality user must.")
    device_type = session.get(DeviceType, version.device_type_id)
    assert device_type is not None
    record = envelope_record(version, device_type)
    # An envelope is kept as long as any case that used it: at least the longest class.
    signature = sign(session, store, actor=actor, password=password, totp_code=totp_code,
                     meaning=SignatureMeaning.ENVELOPE_APPROVAL,
                     target_type="envelope_version", target_id=version.id, content=record,
                     record_key_prefix=f"envelopes/{device_type.id}",
                     retain_until=add_years(now, IMPLANTABLE_YEARS), now=now)
    for previous in session.scalars(sa.select(EnvelopeVersion).where(
            EnvelopeVersion.device_type_id == device_type.id,
            EnvelopeVersion.status == EnvelopeStatus.APPROVED)):
        previous.status = EnvelopeStatus.SUPERSEDED
        record_event(session, actor=actor, action="envelope.superseded",
                     target_type="envelope_version", target_id=previous.id,
                     before={"status": "approved"}, after={"status": "superseded"})
    version.status = EnvelopeStatus.APPROVED
    version.content_sha256 = signature.content_sha256
    version.approved_by_id = actor.id
    version.approved_at = now
    version.signature_id = signature.id
    session.flush()
    record_event(session, actor=actor, action="envelope.approved",
                 target_type="envelope_version", target_id=version.id,
                 before={"status": "draft"}, after={"status": "approved",
                                                    "content_sha256": version.content_sha256})
    return version


def approved_version(session: DbSession, device_type_id: int) -> EnvelopeVersion | None:
    return session.scalar(sa.select(EnvelopeVersion).where(
        EnvelopeVersion.device_type_id == device_type_id,
        EnvelopeVersion.status == EnvelopeStatus.APPROVED))


def get_version(session: DbSession, version_id: int, *, lock: bool = False) -> EnvelopeVersion:
    version = None
    if 0 < version_id < 2**31:
        query = sa.select(EnvelopeVersion).where(EnvelopeVersion.id == version_id)
        version = session.scalar(query.with_for_update() if lock else query)
    if version is None:
        raise NotFound("No such envelope version.")
    return version


def list_versions(session: DbSession) -> list[EnvelopeVersion]:
    return list(session.scalars(sa.select(EnvelopeVersion).order_by(
        EnvelopeVersion.device_type_id, EnvelopeVersion.version.desc())))
