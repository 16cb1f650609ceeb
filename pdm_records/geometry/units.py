"""Length units accepted for uploads, and the factors that convert them to millimetres.

STL carries no unit and trimesh's filename heuristic is wrong (``part_in_mm.stl`` reads as
inches), so the unit is always declared by the uploader and stored with the record.
"""

from __future__ import annotations

from .errors import MeshError

#: Millimetres per unit. Exact by definition (1 in = 25.4 mm exactly since 1959).
MM_PER_UNIT: dict[str, float] = {"mm": 1.0, "cm": 10.0, "m": 1000.0, "in": 25.4}

_ALIASES: dict[str, str] = {
    "millimeter": "mm",
    "millimetre": "mm",
    "centimeter": "cm",
    "centimetre": "cm",
    "meter": "m",
    "metre": "m",
    "inch": "in",
}

#: Human names used in warnings.
UNIT_NAMES: dict[str, str] = {"mm": "millimetres", "cm": "centimetres", "m": "metres",
                              "in": "inches"}


def normalize_unit(unit: str) -> str:
    """Return the canonical unit key (mm, cm, m, in) or raise ``MeshError('bad_units')``."""
    key = unit.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in MM_PER_UNIT:
        raise MeshError(
            "bad_units",
            f"unknown unit {unit!r}: declare one of {', '.join(sorted(MM_PER_UNIT))}",
        )
    return key


def mm_per_unit(unit: str) -> float:
    """Millimetres per one ``unit`` (validated)."""
    return MM_PER_UNIT[normalize_unit(unit)]
