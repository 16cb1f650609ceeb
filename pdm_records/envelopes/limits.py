"""Design-envelope limits: parsing and validation (pure; no database, no Flask).

A design envelope fixes, before any patient matching, the minimum and maximum dimensions and
other clinically relevant limits of a device type and which parameters may change for a patient
(FDA, "Technical Considerations for Additive Manufactured Medical Devices", 2017, §V.B; IMDRF
N58 "Personalized Medical Devices – Regulatory Pathways"). This module only checks that a limits
document is well formed; versioning and approval live in the records layer.

All lengths are millimetres, areas mm², volumes mm³. Validation is strict: an unknown key is an
error rather than silently ignored, because an ignored limit is an unchecked limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

THICKNESS_STATISTICS = ("min", "p1", "p5", "median")


class EnvelopeError(ValueError):
    """An envelope document is malformed; ``field`` names the offending key (dotted path)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ParameterSpec:
    """A patient-matching parameter: its unit, allowed range and whether it may be adjusted."""

    name: str
    unit: str
    min: float | None = None
    max: float | None = None
    patient_adjustable: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"unit": self.unit, "min": self.min, "max": self.max,
                "patient_adjustable": self.patient_adjustable}


_LENGTH_KEYS = ("max_diameter", "min_wall_thickness", "max_wall_thickness")
_NUMBER_KEYS = (*_LENGTH_KEYS, "min_volume", "max_volume", "max_overhang_area",
                "overhang_angle_deg")
_COUNT_KEYS = ("max_bodies", "max_boundary_edges", "max_non_manifold_edges",
               "max_degenerate_faces", "min_faces", "max_faces")
_BOOL_KEYS = ("watertight_required", "no_self_intersections")
_ALL_KEYS = frozenset(
    (*_NUMBER_KEYS, *_COUNT_KEYS, *_BOOL_KEYS, "max_extents", "thickness_statistic", "parameters")
)
_MIN_MAX_PAIRS = (
    ("min_volume", "max_volume"),
    ("min_wall_thickness", "max_wall_thickness"),
    ("min_faces", "max_faces"),
)


def _shown(value: Any) -> str:
    """A refused value as an error message shows it: numbers as they are, anything else by its
    type only (a message never echoes text that was sent, e.g. markup)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(value)
    return {str: "text", list: "a list", dict: "an object", type(None): "null"}.get(
        type(value), type(value).__name__)


def _number(value: Any, name: str, *, allow_zero: bool = True) -> float:
    # bool is an int subclass; True as a limit is a typo, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError(name, f"must be a number, got {type(value).__name__}")
    f = float(value)
    if not math.isfinite(f):
        raise EnvelopeError(name, "must be finite")
    if f < 0 or (f == 0 and not allow_zero):
        raise EnvelopeError(name, f"must be {'positive' if not allow_zero else 'non-negative'}, "
                                  f"got {value}")
    return f


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise EnvelopeError(name, f"must be a whole number, got {_shown(value)}")
    if value < 0:
        raise EnvelopeError(name, f"must be non-negative, got {value}")
    return int(value)


@dataclass(frozen=True)
class EnvelopeLimits:
    """Geometric limits of a design envelope; every limit is optional (None = not checked)."""

    max_extents: tuple[float, float, float] | None = None
    max_diameter: float | None = None
    min_volume: float | None = None
    max_volume: float | None = None
    min_wall_thickness: float | None = None
    max_wall_thickness: float | None = None
    thickness_statistic: str = "min"
    watertight_required: bool = False
    max_bodies: int | None = None
    max_boundary_edges: int | None = None
    max_non_manifold_edges: int | None = None
    max_degenerate_faces: int | None = None
    no_self_intersections: bool = False
    max_overhang_area: float | None = None
    overhang_angle_deg: float | None = None
    min_faces: int | None = None
    max_faces: int | None = None
    parameters: tuple[ParameterSpec, ...] = field(default=())

    @classmethod
    def from_dict(cls, data: Any) -> EnvelopeLimits:
        """Parse a YAML/JSON-ready mapping; raise ``EnvelopeError`` naming the bad field."""
        if not isinstance(data, dict):
            raise EnvelopeError("envelope", "must be a mapping of limit names to values")
        unknown = sorted(set(data) - _ALL_KEYS)
        if unknown:
            raise EnvelopeError(
                unknown[0], f"unknown key (allowed: {', '.join(sorted(_ALL_KEYS))})"
            )
        kw: dict[str, Any] = {}
        for key in _NUMBER_KEYS:
            if data.get(key) is not None:
                kw[key] = _number(data[key], key)
        if "overhang_angle_deg" in kw and not 0 < kw["overhang_angle_deg"] < 90:
            raise EnvelopeError("overhang_angle_deg", "must be between 0 and 90 degrees")
        for key in ("max_diameter",):
            if key in kw and kw[key] == 0:
                raise EnvelopeError(key, "must be positive")
        for key in _COUNT_KEYS:
            if data.get(key) is not None:
                kw[key] = _count(data[key], key)
        for key in _BOOL_KEYS:
            if data.get(key) is not None:
                if not isinstance(data[key], bool):
                    raise EnvelopeError(key, f"must be true or false, got {_shown(data[key])}")
                kw[key] = data[key]
        if data.get("max_extents") is not None:
            ext = data["max_extents"]
            if not isinstance(ext, list | tuple) or len(ext) != 3:
                raise EnvelopeError("max_extents", "must be a list of three lengths [a, b, c]")
            vals = tuple(
                _number(v, f"max_extents[{i}]", allow_zero=False) for i, v in enumerate(ext)
            )
            if not vals[0] >= vals[1] >= vals[2]:
                raise EnvelopeError(
                    "max_extents", "must be sorted largest first (they are compared with the "
                    "part's sorted extents)"
                )
            kw["max_extents"] = vals
        if data.get("thickness_statistic") is not None:
            stat = data["thickness_statistic"]
            if stat not in THICKNESS_STATISTICS:
                raise EnvelopeError(
                    "thickness_statistic", f"must be one of {', '.join(THICKNESS_STATISTICS)}"
                )
            kw["thickness_statistic"] = stat
        for lo, hi in _MIN_MAX_PAIRS:
            if lo in kw and hi in kw and kw[lo] > kw[hi]:
                raise EnvelopeError(lo, f"{lo} ({kw[lo]}) is greater than {hi} ({kw[hi]})")
        if data.get("parameters") is not None:
            kw["parameters"] = _parse_parameters(data["parameters"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        """Canonical mapping (round-trips through ``from_dict``); None limits are omitted."""
        out: dict[str, Any] = {}
        for key in sorted(_ALL_KEYS):
            value = getattr(self, key)
            if key == "parameters":
                if value:
                    out[key] = {p.name: p.to_dict() for p in value}
            elif key == "max_extents":
                if value is not None:
                    out[key] = list(value)
            elif value is not None and not (key in _BOOL_KEYS and value is False):
                out[key] = value
        return out

    def expected_size_mm(self) -> float | None:
        """Largest size the envelope allows (for the units sanity check), if it says."""
        if self.max_extents is not None:
            return self.max_extents[0]
        return self.max_diameter

    def parameter(self, name: str) -> ParameterSpec | None:
        for p in self.parameters:
            if p.name == name:
                return p
        return None


def find_problems(data: Any, limit: int = 100) -> list[EnvelopeError]:
    """Every problem of an envelope document, not only the first one (for forms that mark each
    field). Re-runs :meth:`EnvelopeLimits.from_dict` without each offending key in turn, so the
    rules stay in one place."""
    if not isinstance(data, dict):
        return _first_problem(data)
    work: dict[str, Any] = {k: (dict(v) if k == "parameters" and isinstance(v, dict) else v)
                            for k, v in data.items()}
    if isinstance(work.get("parameters"), dict):
        work["parameters"] = {n: (dict(v) if isinstance(v, dict) else v)
                              for n, v in work["parameters"].items()}
    found: list[EnvelopeError] = []
    for _ in range(limit):
        problems = _first_problem(work)
        if not problems:
            break
        problem = problems[0]
        found.append(problem)
        if not _drop(work, problem.field):
            break
    return found


def _first_problem(data: Any) -> list[EnvelopeError]:
    try:
        EnvelopeLimits.from_dict(data)
    except EnvelopeError as exc:
        return [exc]
    return []


def _drop(data: dict[str, Any], path: str) -> bool:
    """Remove the key a problem names (``a``, ``a[0]``, ``parameters.x``, ``parameters.x.min``)."""
    top = path.split("[", 1)[0].split(".", 1)[0]
    if top != "parameters" or "." not in path:
        return data.pop(top, _MISSING) is not _MISSING
    params = data.get("parameters")
    _, name_and_key = path.split(".", 1)
    if not isinstance(params, dict):
        return data.pop("parameters", _MISSING) is not _MISSING
    for name in sorted(params, key=len, reverse=True):  # names may contain dots
        if name_and_key == name:
            return params.pop(name, _MISSING) is not _MISSING
        if name_and_key.startswith(f"{name}."):
            spec = params[name]
            key = name_and_key[len(name) + 1:]
            if isinstance(spec, dict) and key == "unit" and spec.get("unit") != "?":
                spec["unit"] = "?"  # reported; go on checking the range
                return True
            if isinstance(spec, dict) and key in ("min", "max", "patient_adjustable") \
                    and key in spec:
                spec.pop(key)
                return True
            return params.pop(name, _MISSING) is not _MISSING
    return data.pop("parameters", _MISSING) is not _MISSING


_MISSING = object()


def _parse_parameters(raw: Any) -> tuple[ParameterSpec, ...]:
    if not isinstance(raw, dict):
        raise EnvelopeError("parameters", "must be a mapping {name: {unit, min, max, "
                                          "patient_adjustable}}")
    out = []
    allowed = {"unit", "min", "max", "patient_adjustable"}
    for name in sorted(raw):
        spec = raw[name]
        path = f"parameters.{name}"
        if not isinstance(name, str) or not name:
            raise EnvelopeError("parameters", "parameter names must be non-empty strings")
        if not isinstance(spec, dict):
            raise EnvelopeError(path, "must be a mapping with unit, min, max, patient_adjustable")
        extra = sorted(set(spec) - allowed)
        if extra:
            raise EnvelopeError(f"{path}.{extra[0]}", f"unknown key (allowed: "
                                                      f"{', '.join(sorted(allowed))})")
        unit = spec.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            raise EnvelopeError(f"{path}.unit", "is required (a unit name such as mm or deg)")
        lo = spec.get("min")
        hi = spec.get("max")
        lo_f = _signed_number(lo, f"{path}.min") if lo is not None else None
        hi_f = _signed_number(hi, f"{path}.max") if hi is not None else None
        if lo_f is not None and hi_f is not None and lo_f > hi_f:
            raise EnvelopeError(f"{path}.min", f"min ({lo_f}) is greater than max ({hi_f})")
        adj = spec.get("patient_adjustable", False)
        if not isinstance(adj, bool):
            raise EnvelopeError(f"{path}.patient_adjustable", "must be true or false")
        out.append(ParameterSpec(name=name, unit=unit.strip(), min=lo_f, max=hi_f,
                                 patient_adjustable=adj))
    return tuple(out)


def _signed_number(value: Any, name: str) -> float:
    # Parameters may legitimately be negative (an angle, an offset), unlike geometric limits.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError(name, f"must be a number, got {type(value).__name__}")
    if not math.isfinite(float(value)):
        raise EnvelopeError(name, "must be finite")
    return float(value)
