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
from ..envelopes import EnvelopeError, EnvelopeLimits, find_problems
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
from . import DbSession, free_text
from .audit import record_event
from .signatures import sign


def parse_definition(definition: Any) -> dict[str, Any]:
    """Validate an envelope document; return its canonical form (or a 422 naming every bad
    field, the first one in the message)."""
    try:
        return EnvelopeLimits.from_dict(definition).to_dict()
    except EnvelopeError as exc:
        field_errors: dict[str, list[str]] = {}
        for problem in find_problems(definition) or [exc]:
            field_errors.setdefault(f"definition.{problem.field}", []).append(problem.message)
        raise ValidationError(f"The envelope is not valid: {exc}", field_errors) from exc


def parse_document(text: str, fmt: str) -> Any:
    """A YAML or JSON envelope document (as ``pdm envelope import`` and the UI read it)."""
    import json

    import yaml

    if fmt not in EXPORT_FORMATS:
        raise ValidationError("Choose YAML or JSON.", {"file": ["Use a .yaml, .yml or .json "
                                                                "file."]})
    try:
        return yaml.safe_load(text) if fmt == "yaml" else json.loads(text)
    except (yaml.YAMLError, ValueError) as exc:
        message = f"The file is not valid {fmt.upper()}: {exc}"
        raise ValidationError(message, {"file": [message]}) from exc


def document_format(filename: str) -> str:
    """``yaml`` or ``json`` from a file name (the CLI and the UI decide the same way)."""
    return "yaml" if filename.lower().endswith((".yaml", ".yml")) else "json"


EXPORT_FORMATS = ("yaml", "json")


def export_document(version: EnvelopeVersion, fmt: str) -> str:
    """The text ``pdm envelope export`` prints: JSON of the limits, or YAML with the version,
    status and content hash as a comment line."""
    import json

    import yaml

    if fmt == "json":
        return json.dumps(version.definition, indent=2, sort_keys=True) + "\n"
    header = (f"# envelope version {version.version} of device type {version.device_type_id}: "
              f"{version.status.value}; content sha256 {version.content_sha256 or '-'}")
    return header + "\n" + yaml.safe_dump(version.definition, sort_keys=True).rstrip() + "\n"


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
    notes = free_text(notes, "notes", 5000)
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
                              notes=notes, author_id=actor.id)
    session.add(version)
    session.flush()
    record_event(session, actor=actor, action="envelope.drafted", target_type="envelope_version",
                 target_id=version.id, after={"device_type_id": device_type.id,
                                              "version": version.version,
                                              "definition": canonical})
    return version


def check_editable(actor: User, version: EnvelopeVersion) -> None:
    """Raise unless ``actor`` may change ``version``: a draft, by its author, who is quality."""
    _require_quality(actor)
    if version.status is not EnvelopeStatus.DRAFT:
        raise Conflict(f"Envelope version {version.version} is {version.status.value}; an "
                       "approved envelope cannot be edited. Draft a new version instead.")
    if version.author_id != actor.id:
        raise Forbidden("Only the author edits a draft envelope; draft your own version "
                        "instead (the approver must not have written any of it).")


def update_draft(session: DbSession, *, actor: User, version: EnvelopeVersion,
                 definition: Any, notes: str | None = None) -> EnvelopeVersion:
    """Change a draft. Only its author may: the approver must be someone who wrote none of it."""
    check_editable(actor, version)
    device_type = session.get(DeviceType, version.device_type_id)
    if device_type is None:  # the foreign key makes this impossible; never strip the check (-O)
        raise NotFound(f"device type {version.device_type_id} not found")
    before = {"definition": version.definition, "notes": version.notes}
    version.definition = _checked(device_type, definition)
    if notes is not None:
        version.notes = free_text(notes, "notes", 5000)
    session.flush()
    record_event(session, actor=actor, action="envelope.draft_saved",
                 target_type="envelope_version", target_id=version.id,
                 before=before, after={"definition": version.definition, "notes": version.notes})
    return version


def start_draft(session: DbSession, *, actor: User, device_type_id: int,
                copy_approved: bool) -> EnvelopeVersion:
    """A new draft version for a device type: empty, or a copy of the approved version (as it
    was signed) to change."""
    definition: dict[str, Any] = {}
    notes = ""
    if copy_approved:
        approved = approved_version(session, device_type_id) if 0 < device_type_id < 2**31 \
            else None
        if approved is None:
            raise Conflict("This device type has no approved envelope to copy; start an empty "
                           "draft.")
        definition = approved_definition(session, approved)
        notes = f"Copied from approved version {approved.version}."
    return create_draft(session, actor=actor, device_type_id=device_type_id,
                        definition=definition, notes=notes)


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
    if device_type is None:  # the foreign key makes this impossible; never strip the check (-O)
        raise NotFound(f"device type {version.device_type_id} not found")
    current = approved_version(session, device_type.id)
    if current is not None and current.version > version.version:
        raise Conflict(f"Version {current.version} was approved after this draft was started; "
                       f"approving version {version.version} would replace it with older "
                       "content. Draft a new version instead.")
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


def versions_of(session: DbSession, device_type_ids: list[int]
                ) -> dict[int, list[EnvelopeVersion]]:
    """Envelope versions per device type, newest first."""
    out: dict[int, list[EnvelopeVersion]] = {i: [] for i in device_type_ids}
    if device_type_ids:
        for version in session.scalars(sa.select(EnvelopeVersion).where(
                EnvelopeVersion.device_type_id.in_(device_type_ids)).order_by(
                EnvelopeVersion.device_type_id, EnvelopeVersion.version.desc())):
            out[version.device_type_id].append(version)
    return out


def supersession(session: DbSession, version: EnvelopeVersion
                 ) -> tuple[EnvelopeVersion | None, EnvelopeVersion | None]:
    """(the version this one replaced, the version that replaced it), by approval order."""
    if version.approved_at is None:
        return None, None
    approved = list(session.scalars(sa.select(EnvelopeVersion).where(
        EnvelopeVersion.device_type_id == version.device_type_id,
        EnvelopeVersion.approved_at.is_not(None)).order_by(EnvelopeVersion.approved_at,
                                                          EnvelopeVersion.id)))
    index = next(i for i, v in enumerate(approved) if v.id == version.id)
    return (approved[index - 1] if index > 0 else None,
            approved[index + 1] if index + 1 < len(approved) else None)


def signature_status(session: DbSession, store: ObjectStore | None,
                     version: EnvelopeVersion) -> str:
    """'valid', or why the approval signature no longer holds (§11.10(a): altered records are
    discernible)."""
    from ..models import Signature
    from .signatures import verify_signature

    if version.signature_id is None:
        return "not signed"
    try:
        approved_definition(session, version)
    except Conflict:
        return "broken: the envelope differs from what was approved"
    signature = session.get(Signature, version.signature_id)
    if signature is None:  # the foreign key makes this impossible; never strip the check (-O)
        return "broken: the signature row is missing"
    check = verify_signature(signature, current=None, signed=None, store=store)
    return "valid" if check.valid else f"broken: {check.reason}"


def list_versions(session: DbSession) -> list[EnvelopeVersion]:
    return list(session.scalars(sa.select(EnvelopeVersion).order_by(
        EnvelopeVersion.device_type_id, EnvelopeVersion.version.desc())))
