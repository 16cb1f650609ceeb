"""The audit chain's pure core: what an event's hash covers, and how a chain is verified.

No Flask, no database: the server (``services/audit.py``, ``pdm verify-audit``) and the offline
package verifier use these same functions, so a hash computed here today can be recomputed by an
inspector with nothing but Python and this file (plus ``rfc8785``).

An event's hash is the SHA-256 (hex) of the RFC 8785 canonical JSON of :func:`event_content`:
``seq``, ``prev_hash`` (the previous event's hash, 64 zeros for the first), ``occurred_at`` as
UTC ISO 8601 with microseconds, the actor, action, target, case, before/after values and remote
address. Because ``prev_hash`` is inside the hash, each event commits to the whole chain before
it; a checkpoint of ``(seq, hash)`` kept in write-once storage therefore pins every event up to
``seq`` (21 CFR Part 11 §11.10(e): changes never obscure previous values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .canonical import canonical_sha256, utc_iso

GENESIS_HASH = "0" * 64
CHAIN_VERSION = 1
CONTENT_FIELDS = ("seq", "prev_hash", "occurred_at", "actor_id", "actor_label", "action",
                  "target_type", "target_id", "case_id", "before", "after", "remote_addr")

# Why a chain is broken, as named by :class:`ChainBreak`.
HASH_MISMATCH = "hash mismatch"
PREV_HASH_MISMATCH = "prev_hash mismatch"
GAP = "gap"
OUT_OF_ORDER = "out of order"
CHECKPOINT_MISMATCH = "checkpoint mismatch"
HEAD_MISMATCH = "chain head mismatch"


def event_content(
    *,
    seq: int,
    prev_hash: str,
    occurred_at: datetime | str,
    actor_id: int | None,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str | None,
    case_id: int | None,
    before: Any,
    after: Any,
    remote_addr: str | None,
) -> dict[str, Any]:
    """The dict an event's hash is computed over (every field, nothing else)."""
    return {
        "seq": int(seq),
        "prev_hash": prev_hash,
        "occurred_at": occurred_at if isinstance(occurred_at, str) else utc_iso(occurred_at),
        "actor_id": actor_id,
        "actor_label": actor_label,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "case_id": case_id,
        "before": before,
        "after": after,
        "remote_addr": remote_addr,
    }


def event_hash(content: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``content`` (from :func:`event_content`)."""
    return canonical_sha256(dict(content))


def content_of(event: Any) -> dict[str, Any]:
    """:func:`event_content` of an object or mapping that has the content fields."""
    get = event.get if isinstance(event, Mapping) else lambda name: getattr(event, name)
    values: dict[str, Any] = {name: get(name) for name in CONTENT_FIELDS}
    return event_content(**values)


@dataclass(frozen=True)
class Checkpoint:
    """A chain head ``(seq, hash)`` recorded somewhere the database cannot change."""

    seq: int
    hash: str
    source: str = "checkpoint"


@dataclass(frozen=True)
class ChainBreak:
    """The first place the chain is broken: the event's seq, the kind of break and details."""

    seq: int
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"event {self.seq}: {self.reason}: {self.detail}"


@dataclass
class ChainVerdict:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    checkpoints_checked: int
    first_break: ChainBreak | None = None
    problems: list[str] = field(default_factory=list)
    stubs: int = 0  # events given as (seq, hash) only: linked, not re-hashed

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "events": self.events, "head_seq": self.head_seq,
            "head_hash": self.head_hash, "checkpoints_checked": self.checkpoints_checked,
            "stubs": self.stubs,
            "first_break": None if self.first_break is None else {
                "seq": self.first_break.seq, "reason": self.first_break.reason,
                "detail": self.first_break.detail},
            "problems": list(self.problems),
        }


def verify_chain(
    events: Iterable[Any],
    checkpoints: Iterable[Checkpoint] = (),
    *,
    start_seq: int = 1,
    start_prev_hash: str = GENESIS_HASH,
    progress: Callable[[int], None] | None = None,
) -> ChainVerdict:
    """Verify ``events`` (in seq order; objects or mappings with the content fields and
    ``hash``) against each other and against ``checkpoints``.

    Checks, per event: its seq follows the previous one (no gap, nothing out of order), its
    ``prev_hash`` is the previous event's hash, its ``hash`` is the hash of its content, and
    every checkpoint at its seq names the same hash. After the last event, a checkpoint beyond
    it means events were removed from the end. Stops at the first break. ``start_seq`` and
    ``start_prev_hash`` verify a slice that starts later (the offline package verifier).
    ``progress`` is called with the number of events checked since the last call.

    A mapping with only ``seq`` and ``hash`` (no ``prev_hash``) is a *stub*: an event whose
    content is withheld (another patient's, in a case package). Its seq and the link from it
    to the next full event are checked; its own hash cannot be recomputed.
    """
    pinned: dict[int, list[Checkpoint]] = {}
    for point in checkpoints:
        pinned.setdefault(int(point.seq), []).append(point)
    expected_seq, prev, count, checked = start_seq, start_prev_hash, 0, 0
    last_seq, last_hash = start_seq - 1, start_prev_hash
    first_break: ChainBreak | None = None
    pending = 0
    stubs = 0
    for event in events:
        stub = isinstance(event, Mapping) and "prev_hash" not in event
        content: dict[str, Any]
        if stub:  # another case's event in a package: only (seq, hash) is known
            content = {"seq": int(event["seq"]), "prev_hash": prev}
            stubs += 1
        else:
            content = content_of(event)
        stored_hash = event["hash"] if isinstance(event, Mapping) else event.hash
        seq = int(content["seq"])
        if seq != expected_seq:
            if seq > expected_seq:
                first_break = ChainBreak(expected_seq, GAP, f"event {expected_seq} is missing "
                                         f"(the next stored event is {seq})")
            else:
                first_break = ChainBreak(seq, OUT_OF_ORDER, f"event {seq} comes after event "
                                         f"{expected_seq - 1} (duplicated or reordered)")
            break
        if content["prev_hash"] != prev:
            first_break = ChainBreak(seq, PREV_HASH_MISMATCH,
                                     f"prev_hash {content['prev_hash']} is not the hash of "
                                     f"event {seq - 1} ({prev}): an event before it was "
                                     "removed, inserted or rewritten")
            break
        actual = stored_hash if stub else event_hash(content)
        if actual != stored_hash:
            first_break = ChainBreak(seq, HASH_MISMATCH,
                                     f"stored hash {stored_hash} but the content hashes to "
                                     f"{actual}: the event was edited")
            break
        for point in pinned.get(seq, ()):
            checked += 1
            if point.hash != stored_hash:
                first_break = ChainBreak(seq, CHECKPOINT_MISMATCH,
                                         f"{point.source} pinned hash {point.hash} at this seq; "
                                         f"the database has {stored_hash}: the chain was "
                                         "rewritten up to here")
                break
        if first_break is not None:
            break
        prev, expected_seq, count = stored_hash, seq + 1, count + 1
        last_seq, last_hash = seq, stored_hash
        pending += 1
        if progress is not None and pending >= 1000:
            progress(pending)
            pending = 0
    if progress is not None and pending:
        progress(pending)
    if first_break is None:
        beyond = sorted(s for s in pinned if s > last_seq)
        if beyond:
            point = pinned[beyond[-1]][0]
            first_break = ChainBreak(last_seq + 1, CHECKPOINT_MISMATCH,
                                     f"{point.source} pinned event {point.seq}, but the chain "
                                     f"ends at event {last_seq}: events were removed from the "
                                     "end")
    return ChainVerdict(ok=first_break is None, events=count, head_seq=last_seq,
                        head_hash=last_hash, checkpoints_checked=checked,
                        first_break=first_break, stubs=stubs)


def checkpoint_document(*, seq: int, hash: str, created_at: datetime, count: int) -> dict[str, Any]:
    """The canonical JSON object written to the store for a checkpoint."""
    return {"type": "pdm-records audit checkpoint", "chain_version": CHAIN_VERSION,
            "seq": int(seq), "hash": hash, "created_at": utc_iso(created_at),
            "count": int(count)}


def checkpoint_from_document(document: Mapping[str, Any], source: str) -> Checkpoint:
    """Read a checkpoint object (raises ValueError when it is not one)."""
    if document.get("type") != "pdm-records audit checkpoint":
        raise ValueError("not an audit checkpoint")
    seq, hash_ = document.get("seq"), document.get("hash")
    if not isinstance(seq, int) or not isinstance(hash_, str) or len(hash_) != 64:
        raise ValueError("checkpoint without a valid seq and hash")
    return Checkpoint(seq, hash_, source)
