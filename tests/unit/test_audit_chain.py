"""The pure audit-chain core (21 CFR Part 11 §11.10(e)): hashes and chain verification.

Chains are generated here; each kind of tampering is applied and must be named at the right
event with the right reason.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785

from pdm_records.audit_chain import (
    CHECKPOINT_MISMATCH,
    GAP,
    GENESIS_HASH,
    HASH_MISMATCH,
    OUT_OF_ORDER,
    PREV_HASH_MISMATCH,
    Checkpoint,
    checkpoint_document,
    checkpoint_from_document,
    event_content,
    event_hash,
    verify_chain,
)

START = datetime(2026, 11, 22, 4, 5, 6, 7, tzinfo=UTC)


def chain(n: int, *, tweak: int | None = None) -> list[dict[str, Any]]:
    """``n`` chained events; ``tweak`` changes one event's values (a consistent rewrite)."""
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        content = event_content(
            seq=seq, prev_hash=prev, occurred_at=START + timedelta(seconds=seq),
            actor_id=seq % 3 or None, actor_label=f"User {seq} <u{seq}@example.org>",
            action="case.transition", target_type="case", target_id=str(seq), case_id=seq,
            before={"status": "draft"}, after={"status": "submitted" if seq != tweak
                                               else "released", "n": seq / 7},
            remote_addr="127.0.0.1")
        digest = event_hash(content)
        events.append({**content, "hash": digest})
        prev = digest
    return events


def test_the_hash_is_sha256_of_the_rfc8785_canonical_content() -> None:
    [event] = chain(1)
    content = {k: v for k, v in event.items() if k != "hash"}
    assert event["hash"] == hashlib.sha256(rfc8785.dumps(content)).hexdigest()
    assert content["occurred_at"] == "2026-11-22T04:05:07.000007Z"
    assert content["prev_hash"] == "0" * 64
    assert sorted(content) == sorted(["seq", "prev_hash", "occurred_at", "actor_id",
                                      "actor_label", "action", "target_type", "target_id",
                                      "case_id", "before", "after", "remote_addr"])


def test_every_field_changes_the_hash() -> None:
    [event] = chain(1)
    content = {k: v for k, v in event.items() if k != "hash"}
    for name, other in [("seq", 2), ("prev_hash", "1" * 64), ("occurred_at", "2026-01-01T00:"
                        "00:00.000000Z"), ("actor_id", 99), ("actor_label", "x"),
                        ("action", "y"), ("target_type", "z"), ("target_id", "9"),
                        ("case_id", 5), ("before", None), ("after", {}), ("remote_addr", None)]:
        assert event_hash({**content, name: other}) != event["hash"], name


def test_an_intact_chain_verifies_against_its_checkpoints() -> None:
    events = chain(25)
    counted: list[int] = []
    verdict = verify_chain(events, [Checkpoint(10, events[9]["hash"]),
                                    Checkpoint(25, events[24]["hash"])], progress=counted.append)
    assert verdict.ok and verdict.first_break is None
    assert (verdict.events, verdict.head_seq, verdict.head_hash) == (25, 25, events[24]["hash"])
    assert verdict.checkpoints_checked == 2 and sum(counted) == 25


def test_an_edited_event_is_a_hash_mismatch_at_that_event() -> None:
    events = chain(10)
    events[4]["after"] = {"status": "released"}
    verdict = verify_chain(events)
    assert not verdict.ok and verdict.first_break is not None
    assert (verdict.first_break.seq, verdict.first_break.reason) == (5, HASH_MISMATCH)


def test_a_deleted_event_is_a_gap() -> None:
    events = chain(10)
    del events[6]
    brk = verify_chain(events).first_break
    assert brk is not None and (brk.seq, brk.reason) == (7, GAP)


def test_a_deleted_event_with_renumbering_breaks_the_link() -> None:
    events = chain(10)
    del events[6]
    for event in events[6:]:
        event["seq"] -= 1
    brk = verify_chain(events).first_break
    assert brk is not None and (brk.seq, brk.reason) == (7, PREV_HASH_MISMATCH)


def test_an_inserted_event_breaks_the_link_after_it() -> None:
    events = chain(10)
    forged = event_content(seq=4, prev_hash=events[2]["hash"], occurred_at=START,
                           actor_id=None, actor_label="system", action="forged",
                           target_type="case", target_id="1", case_id=1, before=None,
                           after=None, remote_addr=None)
    events.insert(3, {**forged, "hash": event_hash(forged)})
    for event in events[4:]:
        event["seq"] += 1
    brk = verify_chain(events).first_break
    assert brk is not None and (brk.seq, brk.reason) == (5, PREV_HASH_MISMATCH)


def test_a_duplicated_seq_is_out_of_order() -> None:
    events = chain(5)
    events.insert(3, dict(events[2]))
    brk = verify_chain(events).first_break
    assert brk is not None and (brk.seq, brk.reason) == (3, OUT_OF_ORDER)


def test_a_consistent_rewrite_is_caught_only_by_a_checkpoint() -> None:
    original, rewritten = chain(20), chain(20, tweak=8)
    assert verify_chain(rewritten).ok  # the chain alone cannot tell
    brk = verify_chain(rewritten, [Checkpoint(15, original[14]["hash"])]).first_break
    assert brk is not None and (brk.seq, brk.reason) == (15, CHECKPOINT_MISMATCH)


def test_events_removed_from_the_end_are_caught_by_a_later_checkpoint() -> None:
    events = chain(12)
    brk = verify_chain(events[:9], [Checkpoint(12, events[11]["hash"])]).first_break
    assert brk is not None and (brk.seq, brk.reason) == (10, CHECKPOINT_MISMATCH)


def test_a_slice_verifies_from_a_known_event() -> None:
    events = chain(30)
    verdict = verify_chain(events[10:], [Checkpoint(30, events[29]["hash"])], start_seq=11,
                           start_prev_hash=events[9]["hash"])
    assert verdict.ok and verdict.events == 20
    assert not verify_chain(events[10:], start_seq=11, start_prev_hash=GENESIS_HASH).ok


def test_objects_with_attributes_verify_like_mappings() -> None:
    class Row:
        def __init__(self, data: dict[str, Any]) -> None:
            self.__dict__.update(data)

    events = chain(3)
    assert verify_chain([Row(e) for e in events]).ok


def test_checkpoint_documents_round_trip_and_reject_other_json() -> None:
    document = checkpoint_document(seq=7, hash="a" * 64, created_at=START, count=7)
    assert checkpoint_from_document(document, "x") == Checkpoint(7, "a" * 64, "x")
    for bad in ({}, {**document, "type": "other"}, {**document, "hash": "short"},
                {**document, "seq": "7"}):
        try:
            checkpoint_from_document(bad, "x")
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad}")


def test_stubs_stand_for_withheld_events_and_still_link() -> None:
    """A package carries other cases' events as (seq, hash) only (issue 6 §7)."""
    events = chain(8)
    sliced: list[dict[str, Any]] = [
        e if e["seq"] % 3 else {"seq": e["seq"], "hash": e["hash"]} for e in events]
    verdict = verify_chain(sliced, [Checkpoint(8, events[7]["hash"])])
    assert verdict.ok and verdict.stubs == 2 and verdict.events == 8
    sliced[2] = {"seq": 3, "hash": "f" * 64}  # a swapped stub breaks the next event's link
    brk = verify_chain(sliced).first_break
    assert brk is not None and (brk.seq, brk.reason) == (4, PREV_HASH_MISMATCH)
