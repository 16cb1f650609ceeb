"""Checkpoints of the audit chain in write-once storage, and verification of the whole trail.

A checkpoint is the chain head ``(seq, hash)`` with its time and event count, written as an
RFC 8785 canonical JSON object under ``audit/checkpoints/<seq>.json`` and then indexed in
``audit_checkpoint``. Order of operations: **object first, then the row**. If the row's
transaction fails, the object stays as a harmless extra checkpoint: :func:`verify_audit` lists
the store's checkpoint prefix as well as the table, so it still uses it (and a DBA who deletes
checkpoint rows hides nothing). Checkpoint objects are kept :data:`CHECKPOINT_RETENTION_YEARS`
years (the longest record retention, IMDRF N58) and are never disposed of; because every
event's hash covers the previous one, the newest checkpoint alone pins the whole chain before it.

Before it writes a checkpoint, :func:`take_checkpoint` verifies the events since the previous
checkpoint, so a checkpoint never pins a chain that is already broken.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable, Generator, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..audit_chain import (
    GENESIS_HASH,
    ChainVerdict,
    Checkpoint,
    checkpoint_document,
    checkpoint_from_document,
    verify_chain,
)
from ..canonical import canonical_json, sha256_hex
from ..clock import utcnow
from ..errors import DomainError
from ..models import AuditChainHead, AuditCheckpoint, AuditEvent
from ..retention import IMPLANTABLE_YEARS, add_years
from ..storage import ObjectExists, ObjectStore, StorageError
from . import DbSession

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "audit/checkpoints/"
CHECKPOINT_RETENTION_YEARS = IMPLANTABLE_YEARS
_EVENTS: sa.Table = AuditEvent.__table__  # type: ignore[assignment]
_CHAIN_COLUMNS = [_EVENTS.c[name] for name in (
    "seq", "prev_hash", "hash", "occurred_at", "actor_id", "actor_label", "action",
    "target_type", "target_id", "case_id", "before", "after", "remote_addr")]


class AuditChainBroken(DomainError):
    """The chain does not verify; no checkpoint is taken over a broken chain."""

    status = 409
    code = "audit_chain_broken"


def checkpoint_key(seq: int) -> str:
    return f"{CHECKPOINT_PREFIX}{seq:012d}.json"


def chain_head(session: DbSession) -> tuple[int, str]:
    """``(seq, hash)`` of the last stored event (``(0, 64 zeros)`` for an empty trail)."""
    row = session.execute(sa.select(_EVENTS.c.seq, _EVENTS.c.hash)
                          .order_by(_EVENTS.c.seq.desc()).limit(1)).one_or_none()
    return (int(row.seq), str(row.hash)) if row else (0, GENESIS_HASH)


def last_checkpoint(session: DbSession) -> AuditCheckpoint | None:
    return session.scalar(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc())
                          .limit(1))


def iter_events(session: DbSession, after_seq: int = 0,
                upto_seq: int | None = None) -> Generator[Mapping[str, Any], None, None]:
    """Stored events in seq order as mappings of the chained fields (streamed)."""
    query = sa.select(*_CHAIN_COLUMNS).where(_EVENTS.c.seq > after_seq).order_by(_EVENTS.c.seq)
    if upto_seq is not None:
        query = query.where(_EVENTS.c.seq <= upto_seq)
    result = session.execute(query.execution_options(yield_per=1000))
    try:
        yield from result.mappings()  # type: ignore[misc]
    finally:  # a verification that stops at a break closes the server-side cursor
        result.close()


def take_checkpoint(session: DbSession, store: ObjectStore, *,
                    now: datetime | None = None) -> AuditCheckpoint | None:
    """Checkpoint the current chain head: verify the events since the last checkpoint, write
    the object, then add its index row (flushed; the caller commits).

    Returns None when the trail is empty or its head is checkpointed already. Raises
    :class:`AuditChainBroken` when the events since the last checkpoint do not verify, and the
    store's :class:`~pdm_records.storage.StorageError` when the object cannot be written.
    """
    now = now or utcnow()
    seq, digest = chain_head(session)
    previous = last_checkpoint(session)
    if seq == 0 or (previous is not None and previous.seq >= seq):
        return None
    start = previous.seq if previous is not None else 0
    with closing(iter_events(session, after_seq=start, upto_seq=seq)) as rows:
        verdict = verify_chain(rows, [], start_seq=start + 1,
                               start_prev_hash=previous.hash if previous else GENESIS_HASH)
    if not verdict.ok or verdict.head_seq != seq:
        raise AuditChainBroken(
            f"the audit chain is broken ({verdict.first_break}); no checkpoint was taken. "
            "Run 'pdm verify-audit'.")
    count = session.scalar(sa.select(sa.func.count()).select_from(_EVENTS)
                           .where(_EVENTS.c.seq <= seq)) or 0
    body = canonical_json(checkpoint_document(seq=seq, hash=digest, created_at=now,
                                              count=count))
    key = checkpoint_key(seq)
    sha = sha256_hex(body)
    with tempfile.TemporaryDirectory(prefix="pdm-checkpoint-") as tmp:
        path = Path(tmp) / "checkpoint.json"
        path.write_bytes(body)
        try:
            info = store.put(key, path, sha256=sha, size=len(body), media_type="application/json",
                             retain_until=add_years(now, CHECKPOINT_RETENTION_YEARS))
            version_id = info.version_id
        except ObjectExists:
            # Left by a checkpoint whose row did not commit (or by a second worker): index it,
            # if it is what we would have written.
            existing = store.head(key)
            if existing.sha256 is None:
                raise
            point = checkpoint_from_document(
                json.loads(store.read(key, version_id=existing.version_id,
                                      sha256=existing.sha256)), key)
            if (point.seq, point.hash) != (seq, digest):
                raise AuditChainBroken(
                    f"the stored checkpoint {key} pins hash {point.hash}, the database has "
                    f"{digest} at event {seq}. Run 'pdm verify-audit'.") from None
            version_id, sha = existing.version_id, existing.sha256
    row = AuditCheckpoint(seq=seq, hash=digest, created_at=now, key=key, version_id=version_id,
                          sha256=sha)
    session.add(row)
    session.flush()
    return row


def checkpoint_due(session: DbSession, *, every: int, seconds: int,
                   now: datetime | None = None) -> bool:
    """True when ``every`` events or ``seconds`` have passed since the last checkpoint (and
    there is something new to checkpoint). Two indexed queries: cheap enough for every loop
    of ``pdm worker``."""
    now = now or utcnow()
    seq, _ = chain_head(session)
    previous = last_checkpoint(session)
    done = previous.seq if previous is not None else 0
    if seq <= done:
        return False
    if seq - done >= every:
        return True
    since = previous.created_at if previous is not None else session.scalar(
        sa.select(AuditEvent.occurred_at).where(AuditEvent.seq == done + 1))
    return since is None or now - since >= timedelta(seconds=seconds)


@dataclass
class AuditReport:
    """What ``pdm verify-audit`` found."""

    verdict: ChainVerdict
    checkpoints: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems

    def as_dict(self) -> dict[str, Any]:
        data = self.verdict.as_dict()
        data.update(ok=self.ok, checkpoints=self.checkpoints,
                    problems=self.verdict.problems + self.problems)
        return data


def load_checkpoints(session: DbSession, store: ObjectStore) -> tuple[list[Checkpoint], list[str]]:
    """Every checkpoint, read back from the store and SHA-256 verified: the indexed ones (by
    key, version and SHA-256) and any object under the prefix the table does not list. Returns
    the checkpoints and the problems found (missing or damaged objects, rows that disagree)."""
    points: list[Checkpoint] = []
    problems: list[str] = []
    indexed: set[str] = set()
    for row in session.scalars(sa.select(AuditCheckpoint).order_by(AuditCheckpoint.seq)):
        indexed.add(row.key)
        try:
            point = checkpoint_from_document(
                json.loads(store.read(row.key, version_id=row.version_id, sha256=row.sha256)),
                f"checkpoint {row.key}")
        except (StorageError, ValueError) as exc:
            problems.append(f"checkpoint {row.key} (event {row.seq}) cannot be used: {exc}")
            continue
        if (point.seq, point.hash) != (row.seq, row.hash):
            problems.append(f"checkpoint row {row.key} says event {row.seq} = {row.hash}, the "
                            f"stored object says event {point.seq} = {point.hash}")
        points.append(point)
    for key in store.iter_keys(CHECKPOINT_PREFIX):
        if key in indexed:
            continue
        try:
            info = store.head(key)
            if info.sha256 is None:
                raise ValueError("the store records no SHA-256 for it")
            point = checkpoint_from_document(
                json.loads(store.read(key, version_id=info.version_id, sha256=info.sha256)),
                f"unindexed checkpoint {key}")
        except (StorageError, ValueError) as exc:
            problems.append(f"checkpoint object {key} cannot be used: {exc}")
            continue
        points.append(point)
    return points, problems


def verify_audit(session: DbSession, store: ObjectStore, *,
                 progress: Callable[[int], None] | None = None) -> AuditReport:
    """Verify the whole chain from the database against every checkpoint in the store and the
    chain-head row; name the first broken event."""
    points, problems = load_checkpoints(session, store)
    stored = len(points)
    # The head row is read before the events: events appended meanwhile only come after it.
    head = session.get(AuditChainHead, 1)
    if head is not None and head.seq > 0:
        points.append(Checkpoint(int(head.seq), head.hash, "the chain-head row"))
    with closing(iter_events(session)) as rows:
        verdict = verify_chain(rows, points, progress=progress)
    if head is None and verdict.events:
        # Harmless for the chain (the next append restarts it from the last event), but
        # someone removed it.
        problems.append("the chain-head row (audit_chain_head, id 1) is missing")
    return AuditReport(verdict=verdict, checkpoints=stored, problems=problems)


def event_count(session: DbSession) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(_EVENTS)) or 0


def status_check(session: DbSession, config: Mapping[str, Any],
                 now: datetime | None = None) -> tuple[bool, str]:
    """For ``pdm doctor``: the chain head and the age of the last checkpoint. Not ok when
    events have waited for a checkpoint more than twice PDM_AUDIT_CHECKPOINT_SECONDS (is
    ``pdm worker`` running?)."""
    now = now or utcnow()
    seq, digest = chain_head(session)
    previous = last_checkpoint(session)
    text = f"head event {seq} ({digest[:16]}…)" if seq else "no events yet"
    if previous is None:
        text += "; no checkpoint yet"
    else:
        age = int((now - previous.created_at).total_seconds())
        text += f"; last checkpoint at event {previous.seq}, {_age(age)} ago"
    limit = timedelta(seconds=2 * int(config["PDM_AUDIT_CHECKPOINT_SECONDS"]))
    done = previous.seq if previous is not None else 0
    waiting_since = None
    if seq > done:
        waiting_since = session.scalar(sa.select(AuditEvent.occurred_at)
                                       .where(AuditEvent.seq == done + 1))
    if waiting_since is not None and now - waiting_since > limit:
        waited = int((now - waiting_since).total_seconds())
        return False, text + f"; {seq - done} event(s) have waited {_age(waited)} for one"
    return True, text


def _age(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} days"
