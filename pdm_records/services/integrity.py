"""Is anything about a case altered? The check behind ``pdm verify-case`` and the dossier's
valid/broken marks (21 CFR Part 11 §11.10(a): "discern invalid or altered records"; §11.70:
a signature stays bound to the exact record version it signed).

For every signature of the case:
1. the kept copy of the signed content still hashes to the signature's ``content_sha256``, and
   the manifestation (signer, printed name, time, meaning, target) to its ``binding_sha256``;
2. the parts of the record that must never change (request content, file hashes, the design
   iteration and report a decision names) are, in the database today, what was signed;
3. the signed-record object in the write-once store is byte-identical to the signed document;
4. every stored object the signature binds (attachments, the design mesh, the verification
   report) is read back from the store and still has the SHA-256 that was signed.

Every stored object of the case (attachments, design iterations, verification reports, signed
records) is read back once and re-hashed (streamed: memory stays constant for large files).
Queries and reads only; no changes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

import sqlalchemy as sa

from ..canonical import canonical_sha256, sha256_hex
from ..errors import DomainError
from ..models import Case, EnvelopeVersion, Signature, VerificationReport
from ..storage import ObjectStore, StorageError
from ..storage.base import ObjectCorrupted, ObjectNotFound
from . import DbSession
from .requests import current_parts, signed_parts
from .signatures import signed_document, verify_signature

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` after each stored object is read back."""


@dataclass(frozen=True)
class ObjectCheck:
    """One stored object read back from the store and re-hashed."""

    kind: str  # attachment | design_iteration | verification_report | signed_record
    ref: int  # the id of the attachment, iteration, report or signature
    label: str
    key: str
    version_id: str | None
    sha256: str
    ok: bool
    reason: str


@dataclass(frozen=True)
class SignatureVerdict:
    signature_id: int
    meaning: str
    printed_name: str
    signer_email: str
    signed_at: str
    target_type: str
    target_id: int
    content_sha256: str
    binding_sha256: str
    valid: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class EnvelopeCheck:
    """An envelope version a verification report of the case used."""

    envelope_version_id: int
    version: int
    content_sha256: str | None
    ok: bool
    reason: str


@dataclass
class CaseIntegrity:
    case_number: str
    signatures: list[SignatureVerdict] = field(default_factory=list)
    objects: list[ObjectCheck] = field(default_factory=list)
    envelopes: list[EnvelopeCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (all(s.valid for s in self.signatures) and all(o.ok for o in self.objects)
                and all(e.ok for e in self.envelopes))

    @property
    def problems(self) -> int:
        return (sum(not s.valid for s in self.signatures) + sum(not o.ok for o in self.objects)
                + sum(not e.ok for e in self.envelopes))

    def signature(self, signature_id: int) -> SignatureVerdict | None:
        return next((s for s in self.signatures if s.signature_id == signature_id), None)

    def object(self, kind: str, ref: int) -> ObjectCheck | None:
        return next((o for o in self.objects if o.kind == kind and o.ref == ref), None)

    def as_dict(self) -> dict[str, Any]:
        return {"case": self.case_number, "ok": self.ok, "problems": self.problems,
                "signatures": [s.__dict__ | {"reasons": list(s.reasons)}
                               for s in self.signatures],
                "objects": [o.__dict__ for o in self.objects],
                "envelopes": [e.__dict__ for e in self.envelopes]}


class _NullSink(io.RawIOBase):
    """A write-only file that keeps nothing: the store hashes what it streams through it."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(data)


@dataclass(frozen=True)
class _Spec:
    kind: str
    ref: int
    label: str
    key: str
    version_id: str | None
    sha256: str
    row_problem: str | None = None  # a problem found in the database row itself


def signatures_of(session: DbSession, case: Case) -> list[Signature]:
    return list(session.scalars(sa.select(Signature).where(Signature.case_id == case.id)
                                .order_by(Signature.id)))


def reports_of(session: DbSession, case: Case) -> list[VerificationReport]:
    return list(session.scalars(sa.select(VerificationReport).where(
        VerificationReport.case_id == case.id).order_by(VerificationReport.id)))


def _object_specs(case: Case, reports: list[VerificationReport],
                  signatures: list[Signature]) -> list[_Spec]:
    specs: list[_Spec] = []
    for revision in case.revisions:
        for attachment in revision.attachments:
            if attachment.removed_at is not None:
                continue  # removed from a draft: never a record object
            stored = attachment.file
            specs.append(_Spec("attachment", attachment.id,
                               f"attachment {attachment.id} ({stored.original_name}, revision "
                               f"{revision.revision})", stored.key, stored.version_id,
                               stored.sha256))
    for iteration in case.iterations:
        stored = iteration.file
        specs.append(_Spec("design_iteration", iteration.id,
                           f"design iteration #{iteration.number} ({stored.original_name})",
                           stored.key, stored.version_id, stored.sha256))
    for report in reports:
        problem = None
        if canonical_sha256(report.report) != report.report_sha256:
            problem = "the report row no longer hashes to its recorded SHA-256"
        elif bool((report.report.get("evaluation") or {}).get("passed")) != report.passed:
            problem = "the report row's passed flag disagrees with its content"
        specs.append(_Spec("verification_report", report.id,
                           f"verification report {report.id}", report.record_key,
                           report.record_version_id, report.report_sha256, problem))
    for signature in signatures:
        specs.append(_Spec("signed_record", signature.id,
                           f"signed record of signature {signature.id} "
                           f"({signature.meaning.value})", signature.record_key,
                           signature.record_version_id, sha256_hex(signed_document(signature))))
    return specs


def _read_back(store: ObjectStore, spec: _Spec, seen: dict[tuple[str, str | None, str],
               tuple[bool, str]]) -> ObjectCheck:
    cache_key = (spec.key, spec.version_id, spec.sha256)
    if cache_key not in seen:  # a file shared by two revisions is read once
        ok, reason = True, "intact"
        try:
            store.copy_to(spec.key, cast(BinaryIO, _NullSink()), version_id=spec.version_id,
                          sha256=spec.sha256)
        except ObjectCorrupted:
            ok, reason = False, "the stored content does not match its SHA-256"
        except ObjectNotFound:
            ok, reason = False, "missing from the store"
        except StorageError as exc:
            ok, reason = False, f"could not be read back: {exc}"
        seen[cache_key] = (ok, reason)
    ok, reason = seen[cache_key]
    if ok and spec.row_problem:
        ok, reason = False, spec.row_problem
    return ObjectCheck(spec.kind, spec.ref, spec.label, spec.key, spec.version_id, spec.sha256,
                       ok, reason)


def _bound_objects(signature: Signature) -> list[tuple[str, int]]:
    """The stored objects a signature binds, as (kind, id), taken from what was signed."""
    record = signature.signed_record
    if signature.target_type == "request_revision":
        return [("attachment", int(a["id"])) for a in record.get("attachments", [])]
    bound: list[tuple[str, int]] = []
    iteration = record.get("design_iteration") or {}
    if iteration.get("id"):
        bound.append(("design_iteration", int(iteration["id"])))
    report = record.get("verification_report") or {}
    if report.get("id"):
        bound.append(("verification_report", int(report["id"])))
    return bound


def _envelope_checks(session: DbSession, reports: list[VerificationReport]) -> list[EnvelopeCheck]:
    from .envelopes import approved_definition

    checks = []
    for version_id in sorted({r.envelope_version_id for r in reports}):
        version = session.get(EnvelopeVersion, version_id)
        if version is None:
            checks.append(EnvelopeCheck(version_id, 0, None, False, "envelope version missing"))
            continue
        ok, reason = True, "matches its approval signature"
        try:
            approved_definition(session, version)
        except DomainError as exc:
            ok, reason = False, exc.message
        mismatched = [r.id for r in reports if r.envelope_version_id == version_id
                      and r.envelope_sha256 != version.content_sha256]
        if ok and mismatched:
            ok, reason = False, (f"report(s) {', '.join(map(str, mismatched))} name another "
                                 "content hash for this version")
        checks.append(EnvelopeCheck(version.id, version.version, version.content_sha256, ok,
                                    reason))
    return checks


def check_case(
    session: DbSession, store: ObjectStore, case: Case, *, progress: Progress | None = None
) -> CaseIntegrity:
    """Recompute every hash of ``case`` (see the module docstring); report, never raise."""
    signatures = signatures_of(session, case)
    reports = reports_of(session, case)
    specs = _object_specs(case, reports, signatures)
    result = CaseIntegrity(case_number=case.number)
    seen: dict[tuple[str, str | None, str], tuple[bool, str]] = {}
    for done, spec in enumerate(specs, start=1):
        result.objects.append(_read_back(store, spec, seen))
        if progress is not None:
            progress(done, len(specs))
    for signature in signatures:
        reasons: list[str] = []
        check = verify_signature(signature, current=current_parts(session, case, signature),
                                 signed=signed_parts(signature.signed_record))
        if not check.valid:
            reasons.append(check.reason)
        record_object = result.object("signed_record", signature.id)
        if record_object is not None and not record_object.ok:
            reasons.append(f"the stored signed record: {record_object.reason}")
        for kind, ref in _bound_objects(signature):
            bound = result.object(kind, ref)
            if bound is None:
                reasons.append(f"the signed {kind.replace('_', ' ')} {ref} is no longer on "
                               "the case")
            elif not bound.ok:
                reasons.append(f"{bound.label}: {bound.reason}")
        result.signatures.append(SignatureVerdict(
            signature_id=signature.id, meaning=signature.meaning.value,
            printed_name=signature.printed_name, signer_email=signature.signer_email,
            signed_at=signature.signed_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
            target_type=signature.target_type, target_id=signature.target_id,
            content_sha256=signature.content_sha256, binding_sha256=signature.binding_sha256,
            valid=not reasons, reasons=tuple(reasons)))
    result.envelopes = _envelope_checks(session, reports)
    return result


def find_case_by_number(session: DbSession, number: str) -> Case | None:
    return session.scalar(sa.select(Case).where(Case.number == number.strip().upper()))

