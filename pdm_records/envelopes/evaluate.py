"""Evaluate measurements against an envelope: pass/fail and margins per check.

FDA's AM guidance (§V.B) asks design software to stop the operator from exceeding the
pre-established specifications and to show the design's worst cases; a bare pass/fail hides how
close a design is to a limit, so every check reports a signed margin (positive = inside the
envelope) in the check's unit and relative to the limit, and ``checks_by_margin`` lists the
checks closest to their limits first (the limiting configurations).

Fail closed: a check whose quantity could not be measured (``None``, e.g. the volume of an open
mesh) fails.
"""

from __future__ import annotations

import math
from typing import Any

from .limits import EnvelopeLimits


def _check(
    name: str,
    measured: Any,
    limit: Any,
    kind: str,
    unit: str,
    note: str | None = None,
) -> dict[str, Any]:
    """One numeric check. ``kind`` is "max" (measured <= limit) or "min" (measured >= limit)."""
    out: dict[str, Any] = {"measured": measured, "limit": limit, "kind": kind, "unit": unit}
    if measured is None:
        out.update(passed=False, margin=None, margin_pct=None,
                   note=note or "not measurable on this mesh (fail closed)")
        return out
    margin = float(limit) - float(measured) if kind == "max" else float(measured) - float(limit)
    out["passed"] = margin >= 0
    out["margin"] = margin
    out["margin_pct"] = None if limit == 0 else 100.0 * margin / abs(float(limit))
    if note:
        out["note"] = note
    return out


def _flag(name: str, measured: Any, required: bool, note: str) -> dict[str, Any]:
    return {"measured": measured, "limit": required, "kind": "required", "unit": None,
            "passed": measured is True, "margin": None, "margin_pct": None, "note": note}


def evaluate(
    measurements: dict[str, Any],
    limits: EnvelopeLimits,
    requested_parameters: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Compare ``measurements`` (the report's measurements object) with ``limits``.

    Returns ``{"passed", "checks": {name: {measured, limit, kind, unit, passed, margin,
    margin_pct, [note]}}, "failed": [...], "checks_by_margin": [...], "envelope": {...}}``.
    ``requested_parameters`` ({name: value}) are checked against the envelope's parameter
    ranges; a parameter the envelope does not define fails.
    """
    m = measurements
    checks: dict[str, dict[str, Any]] = {}

    if limits.max_extents is not None:
        ext = m.get("extents") or [None, None, None]
        for i, lim in enumerate(limits.max_extents):
            checks[f"max_extent_{i + 1}"] = _check(
                f"max_extent_{i + 1}", ext[i], lim, "max", "mm",
                note=None if i else "sorted extents, largest first",
            )
    if limits.max_diameter is not None:
        exact = m.get("diameter_exact", True)
        value = m.get("diameter") if exact else m.get("diameter_upper_bound")
        checks["max_diameter"] = _check(
            "max_diameter", value, limits.max_diameter, "max", "mm",
            note=None if exact else "compared using the diameter's certified upper bound",
        )
    if limits.min_volume is not None:
        checks["min_volume"] = _check("min_volume", m.get("volume"), limits.min_volume, "min",
                                      "mm3")
    if limits.max_volume is not None:
        checks["max_volume"] = _check("max_volume", m.get("volume"), limits.max_volume, "max",
                                      "mm3")
    th = m.get("thickness") or {}
    if limits.min_wall_thickness is not None:
        stat = limits.thickness_statistic
        checks["min_wall_thickness"] = _check(
            "min_wall_thickness", th.get(stat), limits.min_wall_thickness, "min", "mm",
            note=f"thickness statistic '{stat}', method {th.get('method')}, "
            f"{th.get('samples')} samples",
        )
    if limits.max_wall_thickness is not None:
        checks["max_wall_thickness"] = _check(
            "max_wall_thickness", th.get("max"), limits.max_wall_thickness, "max", "mm",
            note=f"largest sampled thickness, method {th.get('method')}",
        )
    if limits.watertight_required:
        checks["watertight"] = _flag("watertight", m.get("watertight"), True,
                                     "every edge must be used by exactly two faces")
    for key, field in (
        ("max_bodies", "bodies"),
        ("max_boundary_edges", "boundary_edges"),
        ("max_non_manifold_edges", "non_manifold_edges"),
        ("max_degenerate_faces", "degenerate_faces"),
        ("max_faces", "faces"),
    ):
        lim = getattr(limits, key)
        if lim is not None:
            checks[key] = _check(key, m.get(field), lim, "max", "count")
    if limits.min_faces is not None:
        checks["min_faces"] = _check("min_faces", m.get("faces"), limits.min_faces, "min",
                                     "count")
    if limits.no_self_intersections:
        checks["no_self_intersections"] = _check(
            "no_self_intersections", m.get("self_intersections"), 0, "max", "pairs"
        )
    if limits.max_overhang_area is not None:
        checks["max_overhang_area"] = _check("max_overhang_area", m.get("overhang_area"),
                                             limits.max_overhang_area, "max", "mm2")

    for name, value in sorted((requested_parameters or {}).items()):
        spec = limits.parameter(name)
        if spec is None:
            checks[f"parameter:{name}"] = {
                "measured": value, "limit": None, "kind": "parameter", "unit": None,
                "passed": False, "margin": None, "margin_pct": None,
                "note": "the envelope does not define this parameter",
            }
            continue
        if spec.min is not None:
            c = _check(f"parameter:{name}:min", value, spec.min, "min", spec.unit)
            c["patient_adjustable"] = spec.patient_adjustable
            checks[f"parameter:{name}:min"] = c
        if spec.max is not None:
            c = _check(f"parameter:{name}:max", value, spec.max, "max", spec.unit)
            c["patient_adjustable"] = spec.patient_adjustable
            checks[f"parameter:{name}:max"] = c

    def closeness(item: tuple[str, dict[str, Any]]) -> tuple[float, str]:
        name, c = item
        if c["margin_pct"] is not None:
            return (c["margin_pct"], name)
        if c["margin"] is not None:  # limit 0: at the limit or outside it
            return (0.0 if c["margin"] == 0 else math.copysign(math.inf, c["margin"]), name)
        return (math.inf if c["passed"] else -math.inf, name)

    ordered = sorted(checks.items(), key=closeness)
    failed = [name for name, c in ordered if not c["passed"]]
    return {
        "passed": not failed,
        "checks": checks,
        "failed": failed,
        "checks_by_margin": [name for name, _ in ordered],
        "envelope": limits.to_dict(),
    }
