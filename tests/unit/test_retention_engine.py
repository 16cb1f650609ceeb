"""The pure retention engine (DOMAIN.md §5): regimes, clocks, the latest-deadline rule, leap
days and the policy file's error messages."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pdm_records.retention import (
    DEFAULT_POLICY,
    CaseFacts,
    Period,
    PolicyError,
    add_years,
    compute,
    load_policy,
    parse_period,
    policy_from_data,
)

POLICIES = Path(__file__).resolve().parents[2] / "pdm_records" / "retention_policies"
SIGNED = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
RELEASED = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DELIVERED = datetime(2026, 6, 20, tzinfo=UTC)


def facts(implantable: bool = True, **events: datetime) -> CaseFacts:
    return CaseFacts(implantable=implantable, category="patient_matched", lifetime_years=None,
                     events=events)


def test_default_is_imdrf_15_years_implantable_5_other() -> None:
    implant = compute(DEFAULT_POLICY, facts(True, signed=SIGNED))
    other = compute(DEFAULT_POLICY, facts(False, signed=SIGNED))
    assert implant.retain_until == datetime(2041, 3, 10, 9, 30, tzinfo=UTC)
    assert other.retain_until == datetime(2031, 3, 10, 9, 30, tzinfo=UTC)
    assert implant.retention_class == "implantable" and other.retention_class == "other"
    assert implant.deciding is not None and implant.deciding.regime == "imdrf"
    assert "IMDRF N58" in implant.explain() and "15 years after signed" in implant.explain()


def test_later_events_move_the_imdrf_clock() -> None:
    released = compute(DEFAULT_POLICY, facts(signed=SIGNED, released=RELEASED))
    assert released.retain_until == datetime(2041, 6, 1, 12, 0, tzinfo=UTC)
    assert released.deciding is not None and released.deciding.clock_event == "released"
    delivered = compute(DEFAULT_POLICY, facts(signed=SIGNED, released=RELEASED,
                                              delivered=DELIVERED))
    assert delivered.retain_until == datetime(2041, 6, 20, tzinfo=UTC)


def test_nothing_signed_means_no_deadline() -> None:
    decision = compute(DEFAULT_POLICY, facts())
    assert decision.retain_until is None and decision.deciding is None
    assert decision.not_applied == ("imdrf: waits for signed / released / delivered",)


def test_eu_mdr_and_lifetime_regimes_and_the_latest_deadline_rule() -> None:
    policy = load_policy(POLICIES / "eu-mdr.yaml")
    assert [r.name for r in policy.regimes] == ["imdrf", "eu-mdr", "lifetime"]
    # Only signed: EU MDR and lifetime wait for their events; IMDRF decides.
    early = compute(policy, CaseFacts(False, "custom_made", 30, {"signed": SIGNED}))
    assert [d.regime for d in early.deadlines] == ["imdrf"]
    assert "eu-mdr: waits for delivered" in early.not_applied
    # Other class, delivered: EU MDR's 10 years after delivery beat IMDRF's 5.
    other = compute(policy, CaseFacts(False, "custom_made", 3,
                                      {"signed": SIGNED, "released": RELEASED,
                                       "delivered": DELIVERED}))
    assert other.retain_until == datetime(2036, 6, 20, tzinfo=UTC)
    assert other.deciding is not None and other.deciding.regime == "eu-mdr"
    by_regime = {d.regime: d.until for d in other.deadlines}
    assert by_regime == {"imdrf": datetime(2031, 6, 20, tzinfo=UTC),
                         "eu-mdr": datetime(2036, 6, 20, tzinfo=UTC),
                         "lifetime": datetime(2029, 6, 1, 12, 0, tzinfo=UTC)}
    # A 30-year lifetime beats everything; a 1-year lifetime falls back to the 2-year minimum.
    long_life = compute(policy, CaseFacts(True, "patient_matched", 30,
                                          {"signed": SIGNED, "released": RELEASED}))
    assert long_life.deciding is not None and long_life.deciding.regime == "lifetime"
    assert long_life.retain_until == datetime(2056, 6, 1, 12, 0, tzinfo=UTC)
    short = compute(policy, CaseFacts(False, "adaptable", 1, {"released": RELEASED}))
    lifetime = {d.regime: d for d in short.deadlines}["lifetime"]
    assert lifetime.until == datetime(2028, 6, 1, 12, 0, tzinfo=UTC)
    assert "at least 2 years" in lifetime.period


def test_categories_limit_a_regime() -> None:
    policy = policy_from_data({"regimes": [
        {"name": "base", "clock": "signed", "periods": {"implantable": "1 years",
                                                        "other": "1 years"}},
        {"name": "annex-xiii", "clock": "signed", "categories": ["custom_made"],
         "periods": {"other": "10 years"}}]}, "inline")
    custom = compute(policy, CaseFacts(False, "custom_made", None, {"signed": SIGNED}))
    matched = compute(policy, CaseFacts(False, "patient_matched", None, {"signed": SIGNED}))
    assert custom.deciding is not None and custom.deciding.regime == "annex-xiii"
    assert matched.deciding is not None and matched.deciding.regime == "base"
    implant = compute(policy, CaseFacts(True, "custom_made", None, {"signed": SIGNED}))
    assert "annex-xiii: no period for implantable devices" in implant.not_applied


def test_leap_day_plus_years_is_never_a_day_short() -> None:
    leap = datetime(2028, 2, 29, 8, 0, tzinfo=UTC)
    assert add_years(leap, 15) == datetime(2043, 3, 1, 8, 0, tzinfo=UTC)
    assert add_years(leap, 4) == datetime(2032, 2, 29, 8, 0, tzinfo=UTC)
    assert compute(DEFAULT_POLICY, facts(False, signed=leap)).retain_until == datetime(
        2033, 3, 1, 8, 0, tzinfo=UTC)


def test_periods_in_days_and_seconds() -> None:
    assert parse_period("30 days").after(SIGNED) == datetime(2026, 4, 9, 9, 30, tzinfo=UTC)
    assert parse_period("1 second") == Period(1, "seconds")
    assert parse_period({"years": 2}) == Period(2, "years")
    policy = policy_from_data({"regimes": [{"name": "t", "clock": ["signed"], "periods": {
        "implantable": "20 seconds", "other": "5 seconds"}}]}, "test")
    assert policy.uses_seconds and not DEFAULT_POLICY.uses_seconds
    assert compute(policy, facts(signed=SIGNED)).retain_until == datetime(
        2026, 3, 10, 9, 30, 20, tzinfo=UTC)


def test_the_example_default_file_equals_the_built_in_policy() -> None:
    assert load_policy(POLICIES / "imdrf.yaml").regimes[0].implantable == Period(15, "years")
    assert load_policy(None) is DEFAULT_POLICY and load_policy("") is DEFAULT_POLICY


@pytest.mark.parametrize(("document", "expected"), [
    ("regimes: []", "policy.yaml: field 'regimes': give a non-empty list of regimes"),
    ("- a\n- b", "policy.yaml: expected a mapping with a 'regimes' list"),
    ("regimes: [{name: x, clock: shipped, periods: {other: 5 years}}]",
     "policy.yaml: regime 'x': field 'clock': 'shipped' is not one or more of signed, "
     "released, delivered"),
    ("regimes: [{name: x, clock: signed, periods: {other: 5 weeks}}]",
     "policy.yaml: regime 'x': field 'periods.other': '5 weeks' is not a period"),
    ("regimes: [{name: x, clock: signed, periods: {other: 0 years}}]",
     "policy.yaml: regime 'x': field 'periods.other': must be a positive number"),
    ("regimes: [{name: x, clock: signed, periods: {lifetime: device}}]",
     "policy.yaml: regime 'x': field 'periods.minimum': a lifetime regime needs a minimum"),
    ("regimes: [{name: x, clock: signed, periodz: {other: 5 years}}]",
     "policy.yaml: regime 'x': unknown field 'periodz'"),
    ("regimes: [{name: x, clock: signed, periods: {other: 1 years}},"
     " {name: x, clock: signed, periods: {other: 1 years}}]",
     "policy.yaml: regime 'x': field 'name': used twice"),
    ("regimes: [{name: Bad Name, clock: signed, periods: {other: 1 years}}]",
     "policy.yaml: regime #1: field 'name'"),
    ("regimes: [{name: x, clock: signed, categories: [implant], periods: {other: 1 years}}]",
     "policy.yaml: regime 'x': field 'categories'"),
    ("regimes: [{name: x\n", "policy.yaml: not valid YAML"),
])
def test_invalid_policies_are_named_by_file_regime_and_field(
        tmp_path: Path, document: str, expected: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(document)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    text = "\n".join(info.value.problems).replace(str(tmp_path) + "/", "")
    assert expected in text, text


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"missing\.yaml: cannot be read"):
        load_policy(tmp_path / "missing.yaml")
