"""Audit packages: everything about one or more cases in one signed ZIP (docs/audit-package.md).

21 CFR Part 11 §11.10(b): accurate and complete copies in human-readable and electronic form;
§11.10(e): the audit trail with it; §11.50/§11.70: signatures shown with their manifestation and
bound to their records. The package holds the request revisions, verification reports and
envelope versions as canonical JSON, the original files by version, the signed-record objects,
the case's audit events with their chain hashes (other cases' events in the span only as
``(seq, hash)`` stubs, so no other patient's data leaks), the nearest checkpoint from write-once
storage, a report in HTML and PDF, the offline verifier ``verify_package.py`` and a
``manifest.json`` signed with the installation's Ed25519 key (``manifest.sig``).

Two steps, so that the read is audited before anything is disclosed:

1. :func:`prepare_export` records ``case.exported`` for each case and checkpoints the chain head
   (so the package's slice, including that event, is pinned); the caller commits.
2. :func:`write_package` streams the ZIP into a binary file object: files are copied from the
   store chunk by chunk (``store.copy_to``) and hashed on the way; memory stays constant
   whatever the package size. ``progress`` is called with the bytes of file content written.
"""

from __future__ import annotations

import hashlib
import html
import re
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, BinaryIO

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .. import verify_package
from ..audit_chain import content_of
from ..canonical import canonical_json, sha256_hex, utc_iso
from ..clock import utcnow
from ..errors import NotFound, ValidationError
from ..models import (
    AuditCheckpoint,
    AuditEvent,
    Case,
    CharacteristicConfirmation,
    EnvelopeVersion,
    Signature,
    User,
    VerificationReport,
)
from ..signing_key import public_info
from ..storage import ObjectStore
from . import DbSession
from .audit import record_read_event
from .audit_trail import iter_events, take_checkpoint
from .case_views import manifestation_text
from .signatures import signed_document

FORMAT = verify_package.FORMAT
FORMAT_VERSION = verify_package.FORMAT_VERSION
MAX_CASES = 500  # one package; a bigger search result is exported in several
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
Progress = Callable[[int], None]


@dataclass
class ExportPlan:
    """What :func:`prepare_export` decided: the cases and the chain span of the package."""

    case_ids: list[int]
    numbers: list[str]
    first_seq: int
    upto_seq: int
    total_bytes: int  # file content to copy from the store (for a progress bar)
    created_at: datetime


@dataclass
class ExportSummary:
    files: int
    size: int
    manifest_sha256: str
    key_fingerprint: str
    events: int
    stubs: int
    checkpoint_seq: int
    numbers: list[str] = field(default_factory=list)


def _cases(session: DbSession, numbers_or_ids: Iterable[str | int]) -> list[Case]:
    found: list[Case] = []
    for item in numbers_or_ids:
        if isinstance(item, int) or (isinstance(item, str) and item.isdigit()):
            case = session.get(Case, int(item))
        else:
            case = session.scalar(sa.select(Case).where(Case.number == str(item).strip()))
        if case is None:
            raise NotFound(f"No case {item}.")
        if case not in found:
            found.append(case)
    return found


def find_cases(session: DbSession, numbers_or_ids: Iterable[str | int]) -> list[Case]:
    """The cases named by number (``PDM-2026-000001``) or id; :class:`NotFound` otherwise."""
    cases = _cases(session, numbers_or_ids)
    if not cases:
        raise ValidationError("Name at least one case.", {"cases": ["Name at least one case."]})
    if len(cases) > MAX_CASES:
        raise ValidationError(f"At most {MAX_CASES} cases per package.",
                              {"cases": [f"At most {MAX_CASES} cases per package."]})
    return cases


def prepare_export(
    session: DbSession, store: ObjectStore, *, actor: User | None, cases: list[Case],
    key_fingerprint: str, remote_addr: str | None = None, now: datetime | None = None,
) -> ExportPlan:
    """Record ``case.exported`` for every case and checkpoint the chain head (flushed; the
    caller commits before it writes the package). Raises ``AuditUnavailable`` (503) when the
    events cannot be written and ``AuditChainBroken`` (409) when the chain does not verify."""
    now = now or utcnow()
    numbers = [c.number for c in cases]
    for case in cases:
        record_read_event(session, actor=actor, action="case.exported", target_type="case",
                          target_id=case.id, case_id=case.id, remote_addr=remote_addr,
                          details={"cases": numbers, "format_version": FORMAT_VERSION,
                                   "key_fingerprint": key_fingerprint})
    take_checkpoint(session, store, now=now)
    ids = [c.id for c in cases]
    first = session.scalar(sa.select(sa.func.min(AuditEvent.seq))
                           .where(AuditEvent.case_id.in_(ids)))
    last = session.scalar(sa.select(sa.func.max(AuditEvent.seq))
                          .where(AuditEvent.case_id.in_(ids)))
    point = session.scalar(sa.select(AuditCheckpoint.seq).where(AuditCheckpoint.seq >= last)
                           .order_by(AuditCheckpoint.seq).limit(1))
    total = sum(size for _, size in _file_sizes(session, cases))
    from ..security.events import log_export

    log_export(actor_id=actor.id if actor else None, actor_email=actor.email if actor else None,
               what="audit_package", target_type="case", target_id=",".join(numbers),
               size=total)
    return ExportPlan(case_ids=ids, numbers=numbers, first_seq=int(first or 1),
                      upto_seq=int(point or last or 0), total_bytes=total, created_at=now)


def _file_sizes(session: DbSession, cases: list[Case]) -> list[tuple[str, int]]:
    sizes: list[tuple[str, int]] = []
    for case in cases:
        for revision in case.revisions:
            sizes.extend((a.file.sha256, a.file.size) for a in revision.live_attachments)
        sizes.extend((i.file.sha256, i.file.size) for i in case.iterations)
    return sizes


def safe_name(name: str, limit: int = 100) -> str:
    cleaned = _SAFE.sub("_", name).strip("._") or "file"
    return cleaned[-limit:]


class _Sink:
    """A file-like ZIP entry writer that hashes and counts what passes through it."""

    def __init__(self, entry: IO[bytes], progress: Progress | None) -> None:
        self.entry, self.progress = entry, progress
        self.digest, self.size = hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.entry.write(data)
        self.digest.update(data)
        self.size += len(data)
        if self.progress is not None:
            self.progress(len(data))
        return len(data)


class _Package:
    def __init__(self, dest: BinaryIO, created_at: datetime) -> None:
        self.zip = zipfile.ZipFile(dest, "w", allowZip64=True)
        self.stamp = created_at.timetuple()[:6]
        self.files: list[dict[str, Any]] = []
        self.paths: set[str] = set()

    def _info(self, path: str, compress: bool) -> zipfile.ZipInfo:
        if path in self.paths:
            raise ValueError(f"duplicate package path {path}")
        self.paths.add(path)
        info = zipfile.ZipInfo(path, date_time=self.stamp)
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        return info

    def add_bytes(self, path: str, data: bytes, *, listed: bool = True) -> None:
        self.zip.writestr(self._info(path, compress=True), data)
        if listed:
            self.files.append({"path": path, "sha256": sha256_hex(data), "size": len(data)})

    def add_json(self, path: str, value: Any) -> None:
        self.add_bytes(path, canonical_json(value))

    def add_stored(self, path: str, store: ObjectStore, *, key: str, version_id: str | None,
                   sha256: str, size: int, progress: Progress | None = None,
                   compress: bool = False) -> None:
        info = self._info(path, compress=compress)
        with self.zip.open(info, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as entry:
            sink = _Sink(entry, progress)
            store.copy_to(key, sink, version_id=version_id, sha256=sha256)  # type: ignore[arg-type]
        self.files.append({"path": path, "sha256": sink.digest.hexdigest(), "size": sink.size})

    def add_lines(self, path: str, lines: Iterable[bytes]) -> None:
        info = self._info(path, compress=True)
        with self.zip.open(info, "w", force_zip64=True) as entry:
            sink = _Sink(entry, None)
            for line in lines:
                sink.write(line + b"\n")
        self.files.append({"path": path, "sha256": sink.digest.hexdigest(), "size": sink.size})


def write_package(
    session: DbSession, store: ObjectStore, plan: ExportPlan, dest: BinaryIO, *,
    signing_key: Ed25519PrivateKey, site_name: str = "pdm-records",
    progress: Progress | None = None,
) -> ExportSummary:
    """Stream the package of ``plan`` into ``dest`` (a binary file object, seekable or not).

    Storage errors (``StorageUnavailable``, ``ObjectCorrupted``…) propagate: a package is
    never completed around a file that could not be read whole and verified.
    """
    key_info = public_info(signing_key)
    package = _Package(dest, plan.created_at)
    cases = [session.get(Case, case_id) for case_id in plan.case_ids]
    report_cases: list[dict[str, Any]] = []
    envelope_ids: set[int] = set()
    for case in cases:
        if case is None:  # the plan's ids come from prepare_export in this session
            raise NotFound("A case of the export plan no longer exists.")
        report_cases.append(_write_case(session, store, package, case, envelope_ids, progress))
    envelopes = _write_envelopes(session, store, package, sorted(envelope_ids))
    events, stubs, case_events = _write_events(session, package, plan)
    checkpoint = session.scalar(sa.select(AuditCheckpoint).where(
        AuditCheckpoint.seq == plan.upto_seq))
    if checkpoint is not None:
        package.add_bytes(f"audit/checkpoints/{checkpoint.seq:012d}.json", store.read(
            checkpoint.key, version_id=checkpoint.version_id, sha256=checkpoint.sha256))
    context = {"site_name": site_name, "created_at": utc_iso(plan.created_at),
               "key": key_info, "cases": report_cases, "envelopes": envelopes,
               "events": case_events, "checkpoint": None if checkpoint is None else {
                   "seq": checkpoint.seq, "hash": checkpoint.hash,
                   "created_at": utc_iso(checkpoint.created_at)},
               "span": [plan.first_seq, plan.upto_seq]}
    from .export_report import render_html, render_pdf

    package.add_bytes("report.html", render_html(context).encode("utf-8"))
    package.add_bytes("report.pdf", render_pdf(context))
    package.add_bytes("verify_package.py", Path(verify_package.__file__).read_bytes())
    package.add_bytes("installation-key.pem", key_info.pem.encode("ascii"))
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "created_at": utc_iso(plan.created_at), "site_name": site_name,
        "cases": plan.numbers, "case_ids": plan.case_ids,
        "public_key_fingerprint": key_info.fingerprint, "public_key": key_info.base64,
        "public_key_file": "installation-key.pem",
        "audit_span": {"first_seq": plan.first_seq, "upto_seq": plan.upto_seq},
        "files": sorted(package.files, key=lambda f: f["path"]),
    }
    body = canonical_json(manifest)
    package.add_bytes(verify_package.MANIFEST, body, listed=False)
    import base64

    package.add_bytes(verify_package.MANIFEST_SIG,
                      base64.b64encode(signing_key.sign(body)) + b"\n", listed=False)
    package.zip.close()
    return ExportSummary(files=len(package.files) + 2,
                         size=sum(f["size"] for f in package.files) + len(body),
                         manifest_sha256=sha256_hex(body), key_fingerprint=key_info.fingerprint,
                         events=events, stubs=stubs,
                         checkpoint_seq=checkpoint.seq if checkpoint is not None else 0,
                         numbers=list(plan.numbers))


def _write_case(session: DbSession, store: ObjectStore, package: _Package, case: Case,
                envelope_ids: set[int], progress: Progress | None) -> dict[str, Any]:
    base = f"cases/{case.number}"
    revisions = []
    for revision in case.revisions:
        attachments = []
        for attachment in revision.live_attachments:
            stored = attachment.file
            path = (f"{base}/files/r{revision.revision}/"
                    f"{attachment.id}-{safe_name(stored.original_name)}")
            package.add_stored(path, store, key=stored.key, version_id=stored.version_id,
                               sha256=stored.sha256, size=stored.size, progress=progress)
            attachments.append({
                "id": attachment.id, "kind": attachment.kind.value, "units": attachment.units,
                "description": attachment.description, "original_name": stored.original_name,
                "media_type": stored.media_type, "size": stored.size, "sha256": stored.sha256,
                "storage_key": stored.key, "storage_version_id": stored.version_id,
                "state": stored.state.value, "retain_until": stored.retain_until,
                "legal_hold": stored.legal_hold, "path": path})
        document = {
            "id": revision.id, "revision": revision.revision, "status": revision.status.value,
            "content": revision.content, "content_sha256": revision.content_sha256,
            "created_by": revision.created_by.printed_name, "created_at": revision.created_at,
            "supersedes_id": revision.supersedes_id, "attachments": attachments}
        package.add_json(f"{base}/revisions/r{revision.revision}.json", document)
        revisions.append(document)
    iterations: list[dict[str, Any]] = []
    for iteration in case.iterations:
        stored = iteration.file
        path = f"{base}/iterations/{iteration.number}/{safe_name(stored.original_name)}"
        package.add_stored(path, store, key=stored.key, version_id=stored.version_id,
                           sha256=stored.sha256, size=stored.size, progress=progress)
        reports: list[dict[str, Any]] = []
        for row in session.scalars(sa.select(VerificationReport).where(
                VerificationReport.iteration_id == iteration.id).order_by(VerificationReport.id)):
            envelope_ids.add(row.envelope_version_id)
            report_doc = {
                "id": row.id, "iteration": iteration.number, "passed": row.passed,
                "envelope_version_id": row.envelope_version_id,
                "envelope_sha256": row.envelope_sha256, "mesh_sha256": row.mesh_sha256,
                "report_sha256": row.report_sha256, "created_at": row.created_at,
                "storage_key": row.record_key, "storage_version_id": row.record_version_id,
                "report": row.report}
            package.add_json(f"{base}/reports/{row.id}.json", report_doc)
            package.add_stored(f"{base}/reports/{row.id}.stored-object.json", store,
                               key=row.record_key, version_id=row.record_version_id,
                               sha256=row.report_sha256, size=0, compress=True)
            reports.append(report_doc)
        iterations.append({
            "id": iteration.id, "number": iteration.number, "units": iteration.units,
            "notes": iteration.notes, "based_on_revision_id": iteration.based_on_revision_id,
            "original_name": stored.original_name, "sha256": stored.sha256, "size": stored.size,
            "storage_key": stored.key, "storage_version_id": stored.version_id,
            "created_at": iteration.created_at, "path": path, "reports": reports})
    package.add_json(f"{base}/iterations.json", [
        {k: v for k, v in i.items() if k != "reports"}
        | {"report_ids": [r["id"] for r in i["reports"]]} for i in iterations])
    signatures = _write_signatures(store, package, f"{base}/signatures", list(session.scalars(
        sa.select(Signature).where(Signature.case_id == case.id).order_by(Signature.id))))
    confirmations = [{
        "id": c.id, "iteration_id": c.iteration_id, "revision_id": c.revision_id,
        "item": c.item, "prescribed": c.prescribed, "met": c.met, "note": c.note,
        "confirmed_by": c.confirmed_by.printed_name, "confirmed_at": c.confirmed_at}
        for c in session.scalars(sa.select(CharacteristicConfirmation).where(
            CharacteristicConfirmation.case_id == case.id)
            .order_by(CharacteristicConfirmation.id))]
    summary = {
        "id": case.id, "number": case.number, "status": case.status.value,
        "patient_code": case.patient.code,
        "device_type": {"id": case.device_type.id, "name": case.device_type.name,
                        "category": case.device_type.category.value,
                        "implantable": case.device_type.implantable},
        "institution": case.institution.name,
        "prescriber": {"printed_name": case.prescriber.printed_name,
                       "email": case.prescriber.email,
                       "registration_number": case.prescriber.registration_number},
        "created_at": case.created_at, "released_at": case.released_at,
        "delivered_on": case.delivered_on, "retain_until": case.retain_until,
        "history": [{"from": t.from_status.value if t.from_status else None,
                     "to": t.to_status.value, "by": t.actor_label, "at": t.occurred_at,
                     "reason": t.reason, "signature_id": t.signature_id}
                    for t in case.transitions],
        "comments": [{"author": c.author.printed_name, "body": c.body, "at": c.created_at}
                     for c in case.comments],
        "characteristic_confirmations": confirmations,
    }
    package.add_json(f"{base}/case.json", summary)
    return {**summary, "revisions": revisions, "iterations": iterations,
            "signatures": signatures}


def _write_signatures(store: ObjectStore, package: _Package, base: str,
                      signatures: list[Signature]) -> list[dict[str, Any]]:
    index = []
    for signature in signatures:
        name = f"{signature.id}-{signature.meaning.value}.json"
        body = signed_document(signature)
        package.add_stored(f"{base}/{name}", store, key=signature.record_key,
                           version_id=signature.record_version_id, sha256=sha256_hex(body),
                           size=len(body), compress=True)
        index.append({
            "id": signature.id, "file": name, "meaning": signature.meaning.value,
            "printed_name": signature.printed_name, "signer_email": signature.signer_email,
            "signed_at": signature.signed_at, "target_type": signature.target_type,
            "target_id": signature.target_id, "content_sha256": signature.content_sha256,
            "binding_sha256": signature.binding_sha256,
            "manifestation": manifestation_text(signature)})
    package.add_json(f"{base}.json", index)
    return index


def _write_envelopes(session: DbSession, store: ObjectStore, package: _Package,
                     ids: list[int]) -> list[dict[str, Any]]:
    envelopes = []
    signatures = []
    for version in session.scalars(sa.select(EnvelopeVersion).where(EnvelopeVersion.id.in_(ids))
                                   .order_by(EnvelopeVersion.id)):
        document = {
            "id": version.id, "device_type_id": version.device_type_id,
            "version": version.version, "status": version.status.value,
            "definition": version.definition, "notes": version.notes,
            "content_sha256": version.content_sha256, "created_at": version.created_at,
            "approved_at": version.approved_at, "signature_id": version.signature_id}
        package.add_json(f"envelopes/{version.device_type_id}-v{version.version}.json",
                         document)
        envelopes.append(document)
        if version.signature_id is not None:
            signature = session.get(Signature, version.signature_id)
            if signature is not None:
                signatures.append(signature)
    if signatures:
        _write_signatures(store, package, "envelopes/signatures", signatures)
    return envelopes


def _write_events(session: DbSession, package: _Package,
                  plan: ExportPlan) -> tuple[int, int, list[dict[str, Any]]]:
    """The chain slice ``first_seq..upto_seq``: the cases' events in full, others as stubs.
    Returns (full events, stubs, the full events for the report)."""
    ids = set(plan.case_ids)
    counts = [0, 0]
    mine: list[dict[str, Any]] = []

    def lines() -> Iterable[bytes]:
        for row in iter_events(session, after_seq=plan.first_seq - 1, upto_seq=plan.upto_seq):
            if row["case_id"] in ids:
                content = content_of(row)
                counts[0] += 1
                mine.append({**content, "hash": row["hash"]})
                yield canonical_json({**content, "hash": row["hash"]})
            else:
                counts[1] += 1
                yield canonical_json({"seq": int(row["seq"]), "hash": row["hash"]})

    package.add_lines(verify_package.EVENTS, lines())
    return counts[0], counts[1], mine


def escape(value: Any) -> str:
    return html.escape("" if value is None else str(value))
