"""The pure comparison core of reconciliation: one row against what the store reports."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from pdm_records.services.reconcile import (
    Expected,
    Finding,
    Kind,
    Observed,
    compare_object,
    orphan_floor,
    split_orphans,
    summarize,
)
from pdm_records.storage import ObjectInfo

NOW = datetime(2026, 12, 3, 6, 0, 0, tzinfo=UTC)
UNTIL = NOW + timedelta(days=365, microseconds=250_000)
SHA = "a" * 64
ROW = Expected("stored_file", 7, 3, "records/C-1/x.bin", "v1", SHA, 10, UNTIL, False)


def _info(**changes: object) -> ObjectInfo:
    base = ObjectInfo("records/C-1/x.bin", "v1", 10, SHA, UNTIL.replace(microsecond=0)
                      + timedelta(seconds=1), False, "COMPLIANCE")
    return replace(base, **changes)  # type: ignore[arg-type]


def _kinds(expected: Expected, observed: Observed, mode: str = "COMPLIANCE") -> list[Kind]:
    return [f.kind for f in compare_object(expected, observed, lock_mode=mode, now=NOW)]


def test_an_intact_object_has_no_finding() -> None:
    assert _kinds(ROW, Observed(_info(), SHA, 10)) == []
    # S3 keeps whole seconds: the row's microseconds are not a shortening …
    assert _kinds(ROW, Observed(_info(retain_until=UNTIL.replace(microsecond=0)), SHA, 10)) == []
    # … and a store that keeps it longer than the row is fine (extended before the row)
    assert _kinds(ROW, Observed(_info(retain_until=UNTIL + timedelta(days=9)), SHA, 10)) == []


def test_missing_altered_and_wrong_size() -> None:
    assert _kinds(ROW, Observed(None)) == [Kind.MISSING]
    assert _kinds(ROW, Observed(_info(), "b" * 64, 10)) == [Kind.ALTERED]
    assert _kinds(ROW, Observed(_info(), SHA, 11)) == [Kind.ALTERED]
    assert _kinds(ROW, Observed(_info(sha256="c" * 64), SHA, 10)) == [Kind.ALTERED]
    # a row already marked damaged is known, not new
    (finding,) = compare_object(replace(ROW, damaged=True), Observed(None),
                                lock_mode="COMPLIANCE", now=NOW)
    assert finding.known and finding.resolved


def test_weaker_locks_are_under_locked() -> None:
    one_second_short = UNTIL.replace(microsecond=0) - timedelta(seconds=1)
    assert _kinds(ROW, Observed(_info(retain_until=one_second_short), SHA, 10)) == [
        Kind.UNDER_LOCKED]
    assert _kinds(ROW, Observed(_info(retain_until=None, lock_mode=None), SHA, 10)) == [
        Kind.UNDER_LOCKED]
    (finding,) = compare_object(ROW, Observed(_info(lock_mode="GOVERNANCE"), SHA, 10),
                                lock_mode="COMPLIANCE", now=NOW)
    assert finding.kind is Kind.UNDER_LOCKED and "GOVERNANCE" in finding.detail
    assert finding.expected_until == UNTIL
    # GOVERNANCE is what a GOVERNANCE store requires
    assert _kinds(ROW, Observed(_info(lock_mode="GOVERNANCE"), SHA, 10), "GOVERNANCE") == []
    # a row without a recorded deadline only needs some lock
    free = replace(ROW, retain_until=None)
    assert _kinds(free, Observed(_info(retain_until=NOW), SHA, 10)) == []
    (finding,) = compare_object(free, Observed(_info(retain_until=None), SHA, 10),
                                lock_mode="COMPLIANCE", now=NOW)
    assert finding.expected_until == orphan_floor(ROW.key, NOW)


def test_legal_hold_mismatches_both_ways() -> None:
    held = replace(ROW, legal_hold=True)
    assert _kinds(held, Observed(_info(), SHA, 10)) == [Kind.HOLD_MISSING]
    assert _kinds(held, Observed(_info(legal_hold=True), SHA, 10)) == []
    assert _kinds(ROW, Observed(_info(legal_hold=True), SHA, 10)) == [Kind.HOLD_EXTRA]
    # rows that record no hold (signed records) are not compared
    assert _kinds(replace(ROW, legal_hold=None), Observed(_info(legal_hold=True), SHA, 10)) == []


def test_disposed_rows_expect_no_object() -> None:
    disposed = replace(ROW, present=False)
    assert _kinds(disposed, Observed(None)) == []
    assert _kinds(disposed, Observed(_info())) == [Kind.DISPOSED_PRESENT]


def test_orphans_split_and_floor() -> None:
    new, known = split_orphans(["a", "b", "c", "d"], indexed={"a"}, quarantined={"c"})
    assert (new, known) == (["b", "d"], ["c"])
    assert orphan_floor("draft/2026/12/x", NOW) == NOW + timedelta(days=30)
    assert orphan_floor("records/C-1/sig.json", NOW) == NOW.replace(year=2041)


def test_summary_counts_only_what_is_unresolved() -> None:
    findings = [Finding(Kind.ORPHAN, "a", "", repaired=True),
                Finding(Kind.MISSING, "b", "", known=True),
                Finding(Kind.HOLD_EXTRA, "c", "")]
    summary = summarize(findings, checked=5, store_keys=6, known_quarantined=2)
    assert summary["discrepancies"] == 2 and summary["repaired"] == 1
    assert summary["unresolved"] == 1 and summary["known_damaged"] == 1
    assert summary["by_kind"] == {"hold_extra": 1, "orphan": 1} and not summary["ok"]
    assert summarize([], checked=0, store_keys=0)["ok"]
