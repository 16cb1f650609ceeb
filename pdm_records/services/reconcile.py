"""Consistency between the database and the object store: reconcile and verify-storage.

The design and the failure cases it covers are in ``docs/storage-consistency.md``. In short:
every path writes the object (locked, read back) before the transaction that indexes it commits,
so a failure leaves at most an *orphan* (an object no row names), never a row without a protected
object. This module finds every discrepancy and repairs what can be repaired.

Three layers:

- a **pure comparison core** (:func:`compare_object`, :func:`split_orphans`,
  :func:`orphan_floor`): what the database expects of one object versus what the store reports,
  no I/O;
- **observation** (:func:`expected_objects` reads the rows, :func:`observe` asks the store, reading
  the bytes back to hash them, :func:`orphan_finding` describes an unindexed key);
- **repair** (:func:`repair`): storage action first, then the rows and an audit event in the
  caller's transaction (the CLI commits after each repair, so a long run keeps its progress).

Services flush, never commit.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from ..canonical import sha256_hex, utc_iso
from ..clock import utcnow
from ..models import (
    AuditCheckpoint,
    AuditEvent,
    Case,
    DamagedRecord,
    DisposalItem,
    FileState,
    QuarantinedObject,
    Signature,
    StoredFile,
    User,
    VerificationReport,
)
from ..retention import IMPLANTABLE_YEARS, add_years
from ..storage import ObjectCorrupted, ObjectInfo, ObjectNotFound, ObjectStore
from . import DbSession
from .audit import record_event
from .audit_trail import CHECKPOINT_PREFIX
from .files import DRAFT_RETENTION
from .signatures import signed_document

RUN_ACTIONS = ("storage.reconciled", "storage.verified")


class Kind(StrEnum):
    ORPHAN = "orphan"  # an object in the store that no row indexes
    MISSING = "missing"  # a row whose object (version) is not in the store
    ALTERED = "altered"  # a row whose object's SHA-256 or size differs
    UNDER_LOCKED = "under_locked"  # lock mode or retain-until in storage weaker than the row's
    HOLD_MISSING = "hold_missing"  # the row is under legal hold, the object is not
    HOLD_EXTRA = "hold_extra"  # the object is under legal hold, the row is not
    DISPOSED_PRESENT = "disposed_present"  # the row says disposed, the object is still there


REPAIRABLE = frozenset({Kind.ORPHAN, Kind.MISSING, Kind.ALTERED, Kind.UNDER_LOCKED,
                        Kind.HOLD_MISSING})
_MODE_STRENGTH = {None: 0, "GOVERNANCE": 1, "COMPLIANCE": 2, "LOCAL": 2}


@dataclass(frozen=True)
class Expected:
    """What the database says about one object."""

    row_type: str  # stored_file | signature | verification_report
    row_id: int
    case_id: int | None
    key: str
    version_id: str | None
    sha256: str
    size: int | None  # None: the row does not record it
    retain_until: datetime | None  # None: the row records no deadline
    legal_hold: bool | None  # None: the row records no hold
    present: bool = True  # False for disposed rows
    damaged: bool = False  # already marked damaged (known)


@dataclass(frozen=True)
class Observed:
    """What the store reports about one object; ``info`` is None when it is not there."""

    info: ObjectInfo | None
    content_sha256: str | None = None  # hash of the bytes as read back (None: not read)
    content_size: int | None = None


@dataclass
class Finding:
    kind: Kind
    key: str
    detail: str
    row_type: str | None = None
    row_id: int | None = None
    case_id: int | None = None
    version_id: str | None = None
    size: int | None = None
    sha256: str | None = None
    lock_mode: str | None = None
    retain_until: datetime | None = None  # in storage
    expected_until: datetime | None = None  # what the row (or the orphan floor) asks for
    known: bool = False  # found and handled by an earlier run (quarantined / marked damaged)
    repaired: bool = False
    repair: str = ""  # what was done, or why nothing was

    @property
    def resolved(self) -> bool:
        return self.known or self.repaired

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        for name in ("retain_until", "expected_until"):
            data[name] = utc_iso(data[name]) if data[name] is not None else None
        return data


# -- pure core --------------------------------------------------------------------------------
def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _whole_second(moment: datetime) -> datetime:
    """S3 keeps retain-until in whole seconds (rounded up at put): compare at that precision."""
    return _aware(moment).replace(microsecond=0)


def orphan_floor(key: str, now: datetime) -> datetime:
    """How long an orphan is kept at least when quarantined.

    A draft upload (``draft/``) had a 30-day floor; anything else may be a record whose row was
    lost (a failed commit, a database restored from an older backup), so it gets the longest
    retention a record can need (IMDRF N58: 15 years, implantable) counted from now.
    """
    if key.startswith("draft/"):
        return _aware(now) + DRAFT_RETENTION
    return add_years(_aware(now), IMPLANTABLE_YEARS)


def compare_object(expected: Expected, observed: Observed, *, lock_mode: str,
                   now: datetime) -> list[Finding]:
    """Every discrepancy between one row and its object. Pure.

    ``lock_mode`` is the mode the store must apply (``LOCAL``, ``GOVERNANCE``, ``COMPLIANCE``).
    A lock *stronger* than the row's (later retain-until) is not a discrepancy: retention is
    extended in the store before the row (see the design), so the store may lead.
    """
    base: dict[str, Any] = {"row_type": expected.row_type, "row_id": expected.row_id,
                            "case_id": expected.case_id, "version_id": expected.version_id}
    info = observed.info
    if not expected.present:
        if info is None:
            return []
        return [Finding(Kind.DISPOSED_PRESENT, expected.key,
                        "the row says disposed but the object is still in the store",
                        size=info.size, lock_mode=info.lock_mode, retain_until=info.retain_until,
                        **base)]
    if info is None:
        return [Finding(Kind.MISSING, expected.key,
                        "the object (version) the row names is not in the store",
                        known=expected.damaged, expected_until=expected.retain_until,
                        sha256=expected.sha256, size=expected.size, **base)]
    findings: list[Finding] = []
    problems = []
    if observed.content_sha256 is not None and observed.content_sha256 != expected.sha256:
        problems.append(f"content SHA-256 {observed.content_sha256[:16]}… differs from the "
                        f"recorded {expected.sha256[:16]}…")
    size = observed.content_size if observed.content_size is not None else info.size
    if expected.size is not None and size != expected.size:
        problems.append(f"size {size} differs from the recorded {expected.size}")
    if info.sha256 is not None and info.sha256 != expected.sha256:
        problems.append("the store's own SHA-256 record differs from the row's")
    if problems:
        findings.append(Finding(Kind.ALTERED, expected.key, "; ".join(problems),
                                known=expected.damaged, size=size,
                                sha256=observed.content_sha256 or info.sha256, **base))
    weak = []
    if _MODE_STRENGTH.get(info.lock_mode, 0) < _MODE_STRENGTH.get(lock_mode, 2):
        weak.append(f"lock mode {info.lock_mode or 'none'}, the store requires {lock_mode}")
    if info.retain_until is None:
        weak.append("no retain-until in storage")
    elif expected.retain_until is not None and \
            _aware(info.retain_until) < _whole_second(expected.retain_until):
        weak.append(f"retained until {utc_iso(info.retain_until)} in storage, the database "
                    f"says {utc_iso(expected.retain_until)}")
    if weak:
        findings.append(Finding(Kind.UNDER_LOCKED, expected.key, "; ".join(weak),
                                lock_mode=info.lock_mode, retain_until=info.retain_until,
                                expected_until=expected.retain_until or info.retain_until
                                or orphan_floor(expected.key, now), **base))
    if expected.legal_hold is True and not info.legal_hold:
        findings.append(Finding(Kind.HOLD_MISSING, expected.key,
                                "the row is under legal hold, the object in storage is not",
                                **base))
    elif expected.legal_hold is False and info.legal_hold:
        findings.append(Finding(Kind.HOLD_EXTRA, expected.key,
                                "the object is under legal hold in storage, the row is not; "
                                "release it through the legal-hold workflow or record the hold "
                                "(never released automatically)", **base))
    return findings


def split_orphans(store_keys: Iterable[str], indexed: set[str],
                  quarantined: set[str]) -> tuple[list[str], list[str]]:
    """(new orphans, already quarantined orphans) among ``store_keys``. Pure."""
    new: list[str] = []
    known: list[str] = []
    for key in store_keys:
        if key in indexed or key.startswith(CHECKPOINT_PREFIX):
            # A checkpoint whose row never committed is still evidence: verify-audit reads
            # every checkpoint object in the store, listed or not (docs/audit-trail.md).
            continue
        (known if key in quarantined else new).append(key)
    return new, known


def summarize(findings: list[Finding], *, checked: int, store_keys: int | None,
              known_quarantined: int = 0) -> dict[str, Any]:
    """Counts for the report, the audit event and ``pdm doctor``."""
    new = [f for f in findings if not f.known]
    return {
        "checked": checked,
        "store_keys": store_keys,
        "discrepancies": len(new),
        "by_kind": dict(sorted(Counter(f.kind.value for f in new).items())),
        "repaired": sum(1 for f in new if f.repaired),
        "unresolved": sum(1 for f in findings if not f.resolved),
        "known_damaged": sum(1 for f in findings if f.known),
        "known_quarantined": known_quarantined,
        "ok": all(f.resolved for f in findings),
    }


# -- observation ------------------------------------------------------------------------------
def expected_objects(session: DbSession, backend: str) -> list[Expected]:
    """Every object the database indexes for ``backend``: files, signed records, reports and
    audit checkpoints.

    Signed-record and report objects are held to their case's ``retain_until`` (kept by the
    retention engine) when it is set; otherwise only to being locked at all. Objects a disposal
    deleted (listed in its tombstone, ``disposal_item``) are expected to be absent.
    """
    damaged = set(session.execute(sa.select(DamagedRecord.row_type, DamagedRecord.row_id))
                  .tuples().all())
    case_until: dict[int, datetime | None] = dict(
        session.execute(sa.select(Case.id, Case.retain_until)).tuples().all())
    disposed = set(session.execute(
        sa.select(DisposalItem.key, DisposalItem.version_id)
        .where(DisposalItem.outcome.in_(("deleted", "absent")))).tuples().all())
    rows: list[Expected] = []
    for f in session.scalars(sa.select(StoredFile).where(StoredFile.backend == backend)
                             .order_by(StoredFile.id)):
        rows.append(Expected(
            "stored_file", f.id, f.case_id, f.key, f.version_id, f.sha256, f.size,
            f.retain_until, f.legal_hold, present=f.state is not FileState.DISPOSED,
            damaged=f.state is FileState.DAMAGED or ("stored_file", f.id) in damaged))
    for s in session.scalars(sa.select(Signature).where(Signature.record_key != "")
                             .order_by(Signature.id)):
        body = signed_document(s)
        rows.append(Expected(
            "signature", s.id, s.case_id, s.record_key, s.record_version_id, sha256_hex(body),
            len(body), case_until.get(s.case_id) if s.case_id else None, None,
            present=(s.record_key, s.record_version_id) not in disposed,
            damaged=("signature", s.id) in damaged))
    for r in session.scalars(sa.select(VerificationReport)
                             .where(VerificationReport.record_key != "")
                             .order_by(VerificationReport.id)):
        rows.append(Expected(
            "verification_report", r.id, r.case_id, r.record_key, r.record_version_id,
            r.report_sha256, None, case_until.get(r.case_id), None,
            present=(r.record_key, r.record_version_id) not in disposed,
            damaged=("verification_report", r.id) in damaged))
    # Audit checkpoints are never disposed (docs/audit-trail.md); only their lock is checked.
    for c in session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.id)):
        rows.append(Expected(
            "audit_checkpoint", c.id, None, c.key, c.version_id, c.sha256, None, None, None,
            damaged=("audit_checkpoint", c.id) in damaged))
    return rows


class _HashingSink:
    """A write-only file object that hashes and counts what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> int:
        self.digest.update(chunk)
        self.size += len(chunk)
        return len(chunk)


def observe(store: ObjectStore, expected: Expected, *, read_content: bool = True) -> Observed:
    """Ask the store about one object; read its bytes back and hash them.

    Raises :class:`~pdm_records.storage.StorageUnavailable` (and other storage errors) as they
    come: a run cannot tell a missing object from an unreachable store otherwise.
    """
    try:
        info = store.head(expected.key, version_id=expected.version_id)
    except ObjectNotFound:
        return Observed(None)
    if not read_content or not expected.present:
        return Observed(info)
    sink = _HashingSink()
    try:
        store.copy_to(expected.key, sink, version_id=expected.version_id,  # type: ignore[arg-type]
                      sha256=expected.sha256)
    except ObjectNotFound:
        return Observed(None)
    except ObjectCorrupted:
        pass  # the sink holds what was read: compare_object says how it differs
    return Observed(info, sink.digest.hexdigest(), sink.size)


def observe_all(store: ObjectStore, expected: list[Expected], *,
                workers: int = 8) -> Iterator[tuple[Expected, Observed]]:
    """:func:`observe` every object, ``workers`` at a time, yielding in ``expected`` order.

    Each check is one ``head`` and one read: on S3 these are network round trips, so a few
    in flight multiply the throughput (both backends are safe to share across threads). The
    first storage error stops the run and propagates.
    """
    if workers <= 1:
        for item in expected:
            yield item, observe(store, item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pdm-verify") as pool:
        window: deque[tuple[Expected, Future[Observed]]] = deque()
        for item in expected:
            window.append((item, pool.submit(observe, store, item)))
            if len(window) >= workers * 2:
                done, future = window.popleft()
                yield done, future.result()
        while window:
            done, future = window.popleft()
            yield done, future.result()


def orphan_finding(store: ObjectStore, key: str, now: datetime) -> Finding:
    """Describe an object no row indexes (version, size, lock as the store reports them)."""
    try:
        info: ObjectInfo | None = store.head(key)
    except ObjectNotFound:
        info = None  # e.g. a local data file without its metadata
    floor = orphan_floor(key, now)
    if info is None:
        return Finding(Kind.ORPHAN, key, "no row indexes this object, and the store has no "
                       "record of its version or lock", expected_until=floor)
    lock = (f"{info.lock_mode or 'no'} lock until {utc_iso(info.retain_until)}"
            if info.retain_until else f"{info.lock_mode or 'no'} lock, no retain-until")
    return Finding(Kind.ORPHAN, key, f"no row indexes this object ({lock})",
                   version_id=info.version_id, size=info.size, sha256=info.sha256,
                   lock_mode=info.lock_mode, retain_until=info.retain_until,
                   expected_until=floor)


def quarantined_keys(session: DbSession, backend: str) -> set[str]:
    return set(session.scalars(sa.select(QuarantinedObject.key)
                               .where(QuarantinedObject.backend == backend)))


# -- repair -----------------------------------------------------------------------------------
def repair(session: DbSession, store: ObjectStore, finding: Finding, *, actor: User | None,
           now: datetime | None = None) -> None:
    """Repair one finding; set ``finding.repaired`` and ``finding.repair``.

    Storage first, then rows and the audit event (flushed in the caller's transaction):
    - under-locked: retention extended (and a weaker mode upgraded) to the row's deadline;
    - legal hold missing: placed in storage;
    - orphan: tagged in the store as quarantined, its retention raised to
      :func:`orphan_floor` if weaker, and listed in ``quarantined_object``;
    - missing / altered: the row is marked damaged (``damaged_record``; a file row's state
      becomes DAMAGED) and an ``alert.record_damaged`` audit event is raised.
    Other kinds are not repaired automatically (``finding.repair`` says why). Storage errors
    propagate: the caller rolls back and reports them.
    """
    now = now or utcnow()
    if finding.known or finding.kind not in REPAIRABLE:
        if not finding.known:
            finding.repair = "not repaired automatically"
        return
    target: dict[str, Any] = {
        "target_type": finding.row_type or "object",
        "target_id": finding.row_id if finding.row_id is not None else finding.key,
        "case_id": finding.case_id}
    if finding.kind is Kind.UNDER_LOCKED:
        until = max(_aware(finding.expected_until or now),
                    _aware(finding.retain_until) if finding.retain_until else _aware(now))
        store.extend_retention(finding.key, version_id=finding.version_id, retain_until=until)
        after = store.head(finding.key, version_id=finding.version_id)
        record_event(session, actor=actor, action="storage.lock_repaired", **target,
                     before={"key": finding.key, "lock_mode": finding.lock_mode,
                             "retain_until": finding.retain_until},
                     after={"key": finding.key, "lock_mode": after.lock_mode,
                            "retain_until": after.retain_until})
        finding.repaired = True
        finding.repair = (f"retention extended: {after.lock_mode} until "
                          f"{utc_iso(after.retain_until) if after.retain_until else '?'}")
    elif finding.kind is Kind.HOLD_MISSING:
        store.set_legal_hold(finding.key, version_id=finding.version_id, on=True)
        record_event(session, actor=actor, action="storage.legal_hold_repaired", **target,
                     before={"key": finding.key, "legal_hold": False},
                     after={"key": finding.key, "legal_hold": True})
        finding.repaired, finding.repair = True, "legal hold placed in storage"
    elif finding.kind is Kind.ORPHAN:
        _quarantine(session, store, finding, actor=actor, now=now)
    else:
        _mark_damaged(session, store, finding, actor=actor, now=now)


def _quarantine(session: DbSession, store: ObjectStore, finding: Finding, *,
                actor: User | None, now: datetime) -> None:
    reason = f"orphan: no database row indexes it ({finding.detail})"[:500]
    info = store.quarantine(finding.key, version_id=finding.version_id,
                            reason="orphan: no database row", found_at=now,
                            retain_until=finding.expected_until)
    row = QuarantinedObject(backend=store.name, key=finding.key, version_id=info.version_id,
                            size=info.size, sha256=info.sha256, lock_mode=info.lock_mode,
                            retain_until=info.retain_until, found_at=now, reason=reason)
    session.add(row)
    session.flush()
    record_event(session, actor=actor, action="storage.orphan_quarantined",
                 target_type="quarantined_object", target_id=row.id,
                 after={"key": finding.key, "version_id": info.version_id, "size": info.size,
                        "lock_mode": info.lock_mode, "retain_until": info.retain_until,
                        "reason": reason})
    finding.version_id, finding.size = info.version_id, info.size
    finding.repaired = True
    finding.repair = (f"quarantined: tagged in the store, listed in the database, kept until "
                      f"{utc_iso(info.retain_until) if info.retain_until else '?'}")


def _mark_damaged(session: DbSession, store: ObjectStore, finding: Finding, *,
                  actor: User | None, now: datetime) -> None:
    if finding.row_type is None or finding.row_id is None:  # orphans are quarantined instead
        raise ValueError("only a finding about an indexed row can mark it damaged")
    before: dict[str, Any] = {}
    if finding.row_type == "stored_file":
        stored = session.get(StoredFile, finding.row_id)
        if stored is not None:
            before = {"state": stored.state.value}
            stored.state = FileState.DAMAGED
    row = DamagedRecord(row_type=finding.row_type, row_id=finding.row_id,
                        case_id=finding.case_id, backend=store.name, key=finding.key,
                        version_id=finding.version_id, problem=finding.kind.value,
                        reason=finding.detail[:500], found_at=now)
    session.add(row)
    session.flush()
    # An alert: a record the product promised to keep is missing or altered (Part 11
    # §11.10(a): the ability to discern invalid or altered records).
    record_event(session, actor=actor, action="alert.record_damaged",
                 target_type=finding.row_type, target_id=finding.row_id,
                 case_id=finding.case_id, before=before or None,
                 after={"state": "damaged", "problem": finding.kind.value, "key": finding.key,
                        "version_id": finding.version_id, "detail": finding.detail,
                        "alert": True})
    finding.repaired = True
    finding.repair = "row marked DAMAGED, alert raised"


# -- run records ------------------------------------------------------------------------------
def record_run(session: DbSession, *, command: str, store: ObjectStore,
               summary: dict[str, Any], actor: User | None = None) -> AuditEvent:
    """The audit event of one finished run (``pdm doctor`` and the admin page show the last)."""
    action = "storage.reconciled" if command == "reconcile" else "storage.verified"
    return record_event(session, actor=actor, action=action, target_type="object_store",
                        target_id=store.name, after=summary)


@dataclass(frozen=True)
class LastRun:
    command: str
    at: datetime
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.summary.get("ok"))

    def describe(self) -> str:
        s = self.summary
        kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in s.get("by_kind", {}).items())
        return (f"last {self.command} {utc_iso(self.at)[:19]}Z: {s.get('checked', 0)} object(s) "
                f"checked, {s.get('discrepancies', 0)} discrepanc"
                f"{'y' if s.get('discrepancies') == 1 else 'ies'}"
                + (f" ({kinds})" if kinds else "")
                + f", {s.get('unresolved', 0)} unresolved")


def last_run(session: DbSession) -> LastRun | None:
    """The latest ``pdm reconcile`` or ``pdm verify-storage`` result, if any."""
    event = session.scalar(sa.select(AuditEvent).where(AuditEvent.action.in_(RUN_ACTIONS))
                           .order_by(AuditEvent.id.desc()).limit(1))
    if event is None:
        return None
    command = "reconcile" if event.action == "storage.reconciled" else "verify-storage"
    return LastRun(command, event.occurred_at, dict(event.after or {}))


def quarantine_list(session: DbSession, limit: int = 500) -> list[QuarantinedObject]:
    return list(session.scalars(sa.select(QuarantinedObject)
                                .order_by(QuarantinedObject.found_at.desc()).limit(limit)))


def damaged_list(session: DbSession, limit: int = 500) -> list[DamagedRecord]:
    return list(session.scalars(sa.select(DamagedRecord)
                                .order_by(DamagedRecord.found_at.desc()).limit(limit)))

