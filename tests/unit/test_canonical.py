"""Canonical JSON (RFC 8785, JCS) and UTC timestamps: the form every hash and signature uses."""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum

import pytest

from pdm_records.canonical import canonical_json, canonical_sha256, sha256_hex, utc_iso

# -- RFC 8785 vectors -------------------------------------------------------------------------


def test_rfc8785_section_3_2_2_sample() -> None:
    # RFC 8785 §3.2.2.3 (the "numbers / string / literals" sample) and its canonical output.
    value = {
        "numbers": [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001],
        "string": "\u20ac$\u000f\u000aA'\u0042\u0022\u005c\\\"/",
        "literals": [None, True, False],
    }
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    ).encode()

    assert canonical_json(value) == expected


def test_rfc8785_section_3_2_3_property_sorting() -> None:
    # RFC 8785 §3.2.3: keys sort by UTF-16 code units, so U+1F600 (surrogates D83D DE00)
    # sorts before U+FB33, unlike a sort by code point.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    expected = (
        '{"\\r":"Carriage Return","1":"One","\u0080":"Control",'
        '"\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign",'
        '"\U0001f600":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}'
    ).encode()

    assert canonical_json(value) == expected
    # A plain code-point sort would put the emoji last: the vector tells the two apart.
    assert sorted(value)[-1] == "\U0001f600"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        # RFC 8785 Appendix B and §3.2.2.3 number serialisation (ECMAScript Number.toString).
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (4.50, "4.5"),
        (2e-3, "0.002"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1e23, "1e+23"),
        (295147905179352830000.0, "295147905179352830000"),
        (9007199254740994.0, "9007199254740994"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.7976931348623157e308, "-1.7976931348623157e+308"),
        (333333333.33333329, "333333333.3333333"),
        (9007199254740991, "9007199254740991"),
        (-9007199254740991, "-9007199254740991"),
    ],
)
def test_number_formatting(number: float, expected: str) -> None:
    assert canonical_json(number) == expected.encode()


def test_no_whitespace_and_unicode_not_escaped() -> None:
    value = {"name": "Schädel Ø", "list": [1, 2, {"b": None, "a": "x y"}]}

    out = canonical_json(value)

    assert out == '{"list":[1,2,{"a":"x y","b":null}],"name":"Schädel Ø"}'.encode()
    assert "Schädel Ø".encode() in out
    assert b"\\u" not in out


def test_nested_keys_are_sorted_recursively() -> None:
    assert canonical_json({"z": {"b": 1, "a": [{"d": 1, "c": 2}]}, "a": 0}) == (
        b'{"a":0,"z":{"a":[{"c":2,"d":1}],"b":1}}'
    )


# -- Python values ----------------------------------------------------------------------------


class Meaning(StrEnum):
    APPROVED = "approved"


class Colour(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


def test_enums_serialised_by_value() -> None:
    value = {"meaning": Meaning.APPROVED, "colour": Colour.RED, "level": Level.HIGH}
    assert canonical_json(value) == b'{"colour":"red","level":3,"meaning":"approved"}'


def test_datetime_date_decimal_and_tuple_values() -> None:
    value = {
        "at": datetime(2026, 11, 22, 4, 5, 6, 7, tzinfo=UTC),
        "on": date(2026, 11, 22),
        "mm": Decimal("1.50"),
        "xyz": (1, 2, 3),
    }
    assert canonical_json(value) == (
        b'{"at":"2026-11-22T04:05:06.000007Z","mm":"1.50","on":"2026-11-22","xyz":[1,2,3]}'
    )


def test_nan_refused_with_type_error() -> None:
    with pytest.raises(TypeError, match="NaN"):
        canonical_json({"x": [1, math.nan]})


def test_bytes_refused_with_type_error() -> None:
    with pytest.raises(TypeError, match="bytes"):
        canonical_json({"file": b"\x00\x01"})


@pytest.mark.parametrize("value", [math.inf, -math.inf, 2**53, {"s": {1, 2}}])
def test_values_outside_jcs_are_refused(value: object) -> None:
    with pytest.raises((TypeError, ValueError)):
        canonical_json(value)


# -- hashing ----------------------------------------------------------------------------------


def test_canonical_sha256_is_stable_under_key_order() -> None:
    items = [("patient", "P-0001"), ("meaning", "approved"), ("files", ["ab", "cd"]),
             ("at", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))]
    digests = {canonical_sha256(dict(perm)) for perm in itertools.permutations(items)}

    assert len(digests) == 1
    (digest,) = digests
    assert digest == hashlib.sha256(canonical_json(dict(items))).hexdigest()
    assert digest == sha256_hex(canonical_json(dict(items)))


def test_canonical_sha256_changes_with_content() -> None:
    assert canonical_sha256({"a": 1}) != canonical_sha256({"a": 2})
    assert canonical_sha256({"a": [1, 2]}) != canonical_sha256({"a": [2, 1]})


def test_same_instant_in_other_zone_hashes_the_same() -> None:
    utc = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    berlin = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert canonical_sha256({"at": utc}) == canonical_sha256({"at": berlin})


# -- utc_iso ----------------------------------------------------------------------------------


def test_utc_iso_naive_is_taken_as_utc() -> None:
    assert utc_iso(datetime(2026, 11, 22, 4, 5, 6, 7)) == "2026-11-22T04:05:06.000007Z"


def test_utc_iso_always_has_microseconds() -> None:
    assert utc_iso(datetime(2026, 1, 1, tzinfo=UTC)) == "2026-01-01T00:00:00.000000Z"


def test_utc_iso_converts_aware_time_to_utc() -> None:
    plus_two = datetime(2026, 1, 1, 1, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2)))
    # 01:30 at +02:00 is 23:30 UTC on the previous day.
    assert utc_iso(plus_two) == "2025-12-31T23:30:00.250000Z"


def test_utc_iso_aware_utc_unchanged() -> None:
    assert utc_iso(datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=UTC)) == (
        "2026-06-30T23:59:59.999999Z"
    )


def test_non_string_keys_are_refused() -> None:
    with pytest.raises(TypeError):
        canonical_json({1: "a", "1": "b"})
