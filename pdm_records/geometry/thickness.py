"""Wall thickness by ray casting from seeded surface samples.

Method ("ray", the one Blender's 3D-Print Toolbox and trimesh's ``thickness(method="ray")`` use):
from each sample point, a ray goes into the material along the inward face normal; the distance
to the first surface it meets is the local wall thickness. Points are drawn area-weighted and
uniformly within each face from ``numpy.random.default_rng(seed)``, so the same mesh and seed
give the same points on every run and machine.

Limits, recorded with the result: rays can pass through an edge gap or leave an open mesh
(counted as ``misses``); near sharp concave edges a ray can reach the neighbouring wall sooner
than the true local thickness. The ray and inscribed-sphere methods give different numbers on
real parts (DOMAIN.md §4), which is why the method is named in every report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .raycast import RayScene

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Rays start this fraction of the model size behind the surface (inside the material), so the
#: sample's own face cannot be hit; the offset is added back to the distance.
START_OFFSET = 1e-7


@dataclass(frozen=True)
class SurfaceSample:
    """Seeded area-weighted surface points with their face and unit outward normal."""

    points: FloatArray
    face_index: IntArray
    normals: FloatArray


def sample_surface(
    triangles: FloatArray,
    normals: FloatArray,
    areas: FloatArray,
    count: int,
    seed: int,
) -> SurfaceSample:
    """Draw ``count`` points area-weighted over faces with positive area (deterministic)."""
    rng = np.random.default_rng(seed)
    weights = np.where(areas > 0, areas, 0.0)
    cdf = np.cumsum(weights)
    total = cdf[-1] if len(cdf) else 0.0
    if count <= 0 or total <= 0:
        return SurfaceSample(np.empty((0, 3)), np.empty(0, np.int64), np.empty((0, 3)))
    pick = rng.random(count) * total
    face = np.minimum(np.searchsorted(cdf, pick, side="right"), len(cdf) - 1).astype(np.int64)
    r = rng.random((count, 2))
    # Fold the unit square onto the triangle: uniform barycentric coordinates.
    flip = r.sum(axis=1) > 1.0
    r[flip] = 1.0 - r[flip]
    t = triangles[face]
    pts = t[:, 0] + r[:, :1] * (t[:, 1] - t[:, 0]) + r[:, 1:] * (t[:, 2] - t[:, 0])
    return SurfaceSample(pts, face, normals[face])


def _stats(values: FloatArray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"min": None, "p1": None, "p5": None, "median": None, "max": None}
    # "lower" percentiles pick an actual sample, so the numbers are reproducible measurements.
    p = np.percentile(values, [1, 5, 50], method="lower")
    return {
        "min": float(values.min()),
        "p1": float(p[0]),
        "p5": float(p[1]),
        "median": float(p[2]),
        "max": float(values.max()),
    }


def ray_thickness(
    scene: RayScene,
    sample: SurfaceSample,
    scale: float,
    inward_sign: float = -1.0,
) -> tuple[FloatArray, dict[str, Any]]:
    """Per-sample thickness (``inf`` where the ray left the part) and the summary dict.

    ``inward_sign`` is -1 for outward-wound meshes (rays along -normal) and +1 for meshes whose
    signed volume is negative (inside-out), so the rays still enter the material.
    """
    n = len(sample.points)
    direction = sample.normals * inward_sign
    offset = START_OFFSET * max(scale, 1e-12)
    origin = sample.points + direction * offset
    t, _ = scene.first_hit(origin, direction, np.zeros(n), np.full(n, np.inf))
    thickness = t + offset
    hit = np.isfinite(thickness)
    vals = thickness[hit]
    summary: dict[str, Any] = _stats(vals)
    if len(vals):
        i = int(np.flatnonzero(hit)[np.argmin(vals)])
        summary["min_location"] = [float(x) for x in sample.points[i]]
        summary["min_face"] = int(sample.face_index[i])
    else:
        summary["min_location"] = None
        summary["min_face"] = None
    summary["samples"] = n
    summary["misses"] = int((~hit).sum())
    return thickness, summary
