"""Envelope parsing (strict, with named fields) and evaluation margins."""

from __future__ import annotations

import math
from typing import Any

import pytest

from pdm_records.envelopes import EnvelopeError, EnvelopeLimits, evaluate

# OsteoFab-like facial device envelope (K133809/K161052): demo values.
OSTEOFAB = {
    "max_diameter": 200.0,
    "min_wall_thickness": 1.0,
    "max_wall_thickness": 20.0,
    "max_extents": [200.0, 150.0, 40.0],
    "watertight_required": True,
    "no_self_intersections": True,
    "max_bodies": 1,
    "min_volume": 100.0,
    "max_volume": 200000.0,
    "parameters": {
        "plate_thickness": {"unit": "mm", "min": 1.0, "max": 3.0, "patient_adjustable": True},
        "screw_diameter": {"unit": "mm", "min": 1.5, "max": 2.0, "patient_adjustable": False},
    },
}


def _measurements(**over: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "faces": 1000, "extents": [180.0, 100.0, 10.0], "diameter": 190.0,
        "diameter_upper_bound": 190.0, "diameter_exact": True, "volume": 5000.0,
        "watertight": True, "bodies": 1, "boundary_edges": 0, "non_manifold_edges": 0,
        "degenerate_faces": 0, "self_intersections": 0, "overhang_area": 10.0,
        "thickness": {"min": 1.2, "p1": 1.3, "p5": 1.5, "median": 2.0, "max": 4.0,
                      "method": "ray", "samples": 10000},
    }
    m.update(over)
    return m


def test_round_trip() -> None:
    lim = EnvelopeLimits.from_dict(OSTEOFAB)
    assert EnvelopeLimits.from_dict(lim.to_dict()) == lim
    assert lim.max_extents == (200.0, 150.0, 40.0)
    assert lim.parameter("plate_thickness") is not None
    assert lim.expected_size_mm() == 200.0


def test_margins_are_signed_and_relative() -> None:
    ev = evaluate(_measurements(), EnvelopeLimits.from_dict(OSTEOFAB))
    assert ev["passed"] is True and ev["failed"] == []
    c = ev["checks"]
    assert c["max_diameter"]["margin"] == pytest.approx(10.0)
    assert c["max_diameter"]["margin_pct"] == pytest.approx(5.0)
    assert c["min_wall_thickness"]["margin"] == pytest.approx(0.2)
    assert c["min_wall_thickness"]["margin_pct"] == pytest.approx(20.0)
    assert c["max_extent_1"]["margin"] == pytest.approx(20.0)
    assert c["max_extent_3"]["margin_pct"] == pytest.approx(75.0)
    assert c["no_self_intersections"]["margin"] == 0
    assert c["no_self_intersections"]["margin_pct"] is None
    # closest to a limit first: the zero-margin count checks, then diameter (5 %), then ...
    order = ev["checks_by_margin"]
    assert order.index("max_diameter") < order.index("max_extent_1") < order.index("max_extent_3")
    assert order.index("min_wall_thickness") > order.index("max_diameter")
    assert order[-1] == "watertight"  # boolean checks have no margin: last when passing


def test_failure_has_negative_margin_and_comes_first() -> None:
    ev = evaluate(_measurements(thickness={"min": 0.8, "max": 4.0, "method": "ray",
                                           "samples": 10}),
                  EnvelopeLimits.from_dict(OSTEOFAB))
    assert ev["passed"] is False
    assert ev["failed"] == ["min_wall_thickness"]
    assert ev["checks"]["min_wall_thickness"]["margin"] == pytest.approx(-0.2)
    assert ev["checks_by_margin"][0] == "min_wall_thickness"


def test_unmeasurable_quantity_fails_closed() -> None:
    ev = evaluate(_measurements(volume=None, watertight=False), EnvelopeLimits.from_dict(OSTEOFAB))
    assert ev["checks"]["min_volume"]["passed"] is False
    assert ev["checks"]["min_volume"]["margin"] is None
    assert set(ev["failed"]) == {"min_volume", "max_volume", "watertight"}


def test_uncertain_diameter_uses_upper_bound() -> None:
    m = _measurements(diameter=199.9, diameter_upper_bound=200.5, diameter_exact=False)
    ev = evaluate(m, EnvelopeLimits.from_dict({"max_diameter": 200.0}))
    assert ev["checks"]["max_diameter"]["measured"] == 200.5
    assert ev["passed"] is False


def test_requested_parameters() -> None:
    lim = EnvelopeLimits.from_dict(OSTEOFAB)
    ev = evaluate(_measurements(), lim, {"plate_thickness": 3.5, "hole_count": 4})
    assert ev["checks"]["parameter:plate_thickness:max"]["margin"] == pytest.approx(-0.5)
    assert ev["checks"]["parameter:plate_thickness:min"]["passed"] is True
    assert ev["checks"]["parameter:hole_count"]["passed"] is False
    assert set(ev["failed"]) == {"parameter:plate_thickness:max", "parameter:hole_count"}


def test_zero_limit_has_no_relative_margin() -> None:
    ev = evaluate(_measurements(boundary_edges=3),
                  EnvelopeLimits.from_dict({"max_boundary_edges": 0}))
    c = ev["checks"]["max_boundary_edges"]
    assert c["margin"] == -3 and c["margin_pct"] is None and c["passed"] is False


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"min_volume": 10.0, "max_volume": 5.0}, "min_volume"),
        ({"min_wall_thickness": 3.0, "max_wall_thickness": 2.0}, "min_wall_thickness"),
        ({"min_faces": 10, "max_faces": 5}, "min_faces"),
        ({"max_diameter": -1.0}, "max_diameter"),
        ({"max_diameter": 0}, "max_diameter"),
        ({"max_diameter": math.inf}, "max_diameter"),
        ({"max_diameter": True}, "max_diameter"),
        ({"max_diameter": "200"}, "max_diameter"),
        ({"max_bodies": 1.5}, "max_bodies"),
        ({"max_bodies": -1}, "max_bodies"),
        ({"max_extent": [1, 2, 3]}, "max_extent"),
        ({"max_extents": [1, 2]}, "max_extents"),
        ({"max_extents": [1, 2, 3]}, "max_extents"),
        ({"max_extents": [3, 2, 0]}, "max_extents[2]"),
        ({"watertight_required": "yes"}, "watertight_required"),
        ({"thickness_statistic": "mean"}, "thickness_statistic"),
        ({"overhang_angle_deg": 95}, "overhang_angle_deg"),
        ({"parameters": {"t": {"unit": "mm", "min": 3, "max": 1}}}, "parameters.t.min"),
        ({"parameters": {"t": {"min": 1}}}, "parameters.t.unit"),
        ({"parameters": {"t": {"unit": "mm", "step": 1}}}, "parameters.t.step"),
        ({"parameters": {"t": {"unit": "mm", "patient_adjustable": 1}}},
         "parameters.t.patient_adjustable"),
        ({"parameters": [1, 2]}, "parameters"),
    ],
)
def test_invalid_envelopes_name_the_field(doc: dict[str, Any], field: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        EnvelopeLimits.from_dict(doc)
    assert info.value.field == field
    assert field in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(EnvelopeError):
        EnvelopeLimits.from_dict([1, 2, 3])


def test_find_problems_reports_every_bad_field_not_only_the_first() -> None:
    from pdm_records.envelopes import find_problems

    problems = find_problems({
        "min_volume": 5, "max_volume": 1, "max_diameter": -1, "max_extents": [1, 2, 3],
        "bogus": 1, "parameters": {"a": {"unit": "", "min": 3, "max": 1},
                                   "b": {"unit": "mm", "min": "x"}}})
    fields = sorted(p.field for p in problems)
    assert fields == ["bogus", "max_diameter", "max_extents", "min_volume",
                      "parameters.a.min", "parameters.a.unit", "parameters.b.min"]
    assert find_problems({"max_diameter": 200.0, "parameters": {
        "a": {"unit": "mm", "min": 1, "max": 2}}}) == []
    assert [p.field for p in find_problems("not a mapping")] == ["envelope"]
