"""Size and shape measurements on numpy arrays: extents, oriented extents, diameter, overhang.

Oriented extents never use ``bounding_box_oriented`` on the full mesh (52-73 s at 1 M faces,
shared/notes/mesh-verification.md). The orientation comes from a minimum-volume box search
over a small deterministic point set (the extreme vertices along fixed directions plus a
seeded sample, at most ``OBB_POINTS``); the extents are then measured over *all* vertices in
that orientation, so the box always encloses the whole part (only its orientation's optimality
is approximate).

Oriented box: see ``_oriented_box_rotation`` (own implementation of the hull-facet heuristic so
that verifying an STL does not import trimesh).

The diameter (largest distance between two points of the part, which is attained at two convex
hull vertices) is computed with certified bounds: a lower bound from actual vertex pairs, an
upper bound from direction widths and an enclosing ball, and an exact brute force over the
vertices that could still beat the lower bound when they are few enough. The report states
whether the value is exact and gives the upper bound; envelope checks use the upper bound.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

OBB_POINTS = 300
OBB_NORMALS = 64
DIAMETER_BRUTE_FORCE_MAX = 4000
#: Relative gap between the certified bounds below which the diameter search stops early.
DIAMETER_TIGHT = 1e-6
_CHUNK = 65536


def _icosphere(subdivisions: int) -> tuple[FloatArray, IntArray]:
    """Unit icosphere (vertices, faces) by repeated midpoint subdivision of an icosahedron."""
    t = (1.0 + 5.0**0.5) / 2.0
    v = np.array([[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
                  [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]],
                 dtype=np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9],
                  [5, 11, 4], [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2],
                  [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10],
                  [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    v /= np.linalg.norm(v, axis=1)[:, None]
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mid = v[uniq].sum(axis=1)
        mid /= np.linalg.norm(mid, axis=1)[:, None]
        m = inv.reshape(3, -1).T + len(v)  # midpoint of edges (01, 12, 20) of each face
        v = np.concatenate([v, mid])
        a, b, c = f[:, 0], f[:, 1], f[:, 2]
        ab, bc, ca = m[:, 0], m[:, 1], m[:, 2]
        f = np.concatenate([np.stack(x, axis=1) for x in
                            ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return v, f


def bounds(points: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-column min and max of ``(n, 3)`` points.

    Column by column on purpose: numpy's ``min(axis=0)`` on a C-ordered (n, 3) array is ~15x
    slower than three 1-D reductions (17 ms vs 1 ms at 500 k points)."""
    lo = np.array([points[:, i].min() for i in range(points.shape[1])])
    hi = np.array([points[:, i].max() for i in range(points.shape[1])])
    return lo, hi


def _center(points: FloatArray) -> FloatArray:
    lo, hi = bounds(points)
    return (lo + hi) / 2.0


@lru_cache(maxsize=4)
def _directions(subdivisions: int) -> tuple[FloatArray, float]:
    """Half of an icosphere's vertex directions (antipodal pairs removed) and the covering
    angle's cosine: every unit vector is within that angle of some direction or its negation."""
    d, ico_faces = _icosphere(subdivisions)
    keep = (d[:, 2] > 1e-12) | ((np.abs(d[:, 2]) <= 1e-12) & (d[:, 1] > 1e-12)) | (
        (np.abs(d[:, 2]) <= 1e-12) & (np.abs(d[:, 1]) <= 1e-12) & (d[:, 0] > 0)
    )
    # Covering radius: the farthest any point of a spherical face is from its nearest vertex is
    # reached at the face's circumcentre (faces are acute).
    tri = d[ico_faces]
    cc = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    cc /= np.linalg.norm(cc, axis=1)[:, None]
    cc *= np.sign(np.einsum("ij,ij->i", cc, tri[:, 0]))[:, None]
    cos_cover = float(np.min(np.einsum("ij,ij->i", cc, tri[:, 0])))
    return d[keep], cos_cover


def shared_extremes(points: FloatArray) -> tuple[IntArray, FloatArray, FloatArray]:
    """Extreme points about the bounding-box centre, computed once for diameter and OBB."""
    c = _center(points)
    return extreme_points(points - c, _directions(1)[0])


def face_geometry(tri: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Per face: cross product of the edge vectors, area, unit normal (0 for degenerate)."""
    cross, area, normals, _ = face_geometry_full(tri)
    return cross, area, normals


def face_geometry_full(
    tri: FloatArray,
) -> tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Cross products, areas, unit normals and the degenerate-face mask in one pass.

    Degenerate (zero area to float precision): |e0 x e2| <= 1e-10 |e0| |e2| at the first
    corner, i.e. the sine of the corner angle is zero to float precision (a triangle with
    non-zero area has no corner of 0 or 180 degrees), or an edge has zero length.
    """
    e0 = tri[:, 1] - tri[:, 0]
    e2 = tri[:, 2] - tri[:, 0]
    # Column-wise cross product: np.cross allocates several (n, 3) temporaries.
    cross = np.empty_like(e0)
    cross[:, 0] = e0[:, 1] * e2[:, 2] - e0[:, 2] * e2[:, 1]
    cross[:, 1] = e0[:, 2] * e2[:, 0] - e0[:, 0] * e2[:, 2]
    cross[:, 2] = e0[:, 0] * e2[:, 1] - e0[:, 1] * e2[:, 0]
    n2 = np.einsum("ij,ij->i", cross, cross)
    norm = np.sqrt(n2)
    area = 0.5 * norm
    normals = np.zeros_like(cross)
    np.divide(cross, norm[:, None], out=normals, where=(norm > 0)[:, None])
    l0 = np.einsum("ij,ij->i", e0, e0)
    l2 = np.einsum("ij,ij->i", e2, e2)
    degenerate = (n2 <= 1e-20 * l0 * l2) | (l0 == 0) | (l2 == 0)
    return cross, area, normals, degenerate


def degenerate_mask(tri: FloatArray, area: FloatArray) -> npt.NDArray[np.bool_]:
    """Zero-area faces (see ``face_geometry_full``); ``area`` is accepted for compatibility."""
    return face_geometry_full(tri)[3]


def signed_volume(tri: FloatArray, origin: FloatArray, cross: FloatArray | None = None) -> float:
    """Sum of signed tetrahedron volumes (origin, a, b, c): the enclosed volume of a closed,
    outward-wound surface (divergence theorem). Computed about ``origin`` (the bounding box
    centre) to limit cancellation; the result does not depend on it for closed surfaces.
    Uses a . (b x c) = a . ((b - a) x (c - a)), so the face cross products can be reused."""
    if cross is None:
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return float(np.einsum("ij,ij->", tri[:, 0] - origin, cross) / 6.0)


def overhang_area(normals: FloatArray, area: FloatArray, angle_deg: float) -> float:
    """Area of faces whose normal is within ``angle_deg`` of straight down (-Z)."""
    cos_lim = np.cos(np.radians(angle_deg))
    down = -normals[:, 2]
    return float(area[(down > cos_lim) & (area > 0)].sum())


def extreme_points(points: FloatArray, dirs: FloatArray) -> tuple[IntArray, FloatArray,
                                                                  FloatArray]:
    """Indices of the extreme points along +/-dirs and the projections' max and min."""
    n = len(points)
    mx = np.full(len(dirs), -np.inf)
    mn = np.full(len(dirs), np.inf)
    amx = np.zeros(len(dirs), dtype=np.int64)
    amn = np.zeros(len(dirs), dtype=np.int64)
    for s in range(0, n, _CHUNK):
        # (directions, points) layout: the reductions run along contiguous rows.
        proj = dirs @ points[s : s + _CHUNK].T
        imx = proj.argmax(axis=1)
        imn = proj.argmin(axis=1)
        r = np.arange(len(dirs))
        cmx = proj[r, imx]
        cmn = proj[r, imn]
        better = cmx > mx
        amx[better] = s + imx[better]
        mx = np.where(better, cmx, mx)
        better = cmn < mn
        amn[better] = s + imn[better]
        mn = np.where(better, cmn, mn)
    return np.unique(np.concatenate([amx, amn])), mx, mn


def _max_pair(p: FloatArray, q: FloatArray | None = None) -> tuple[float, int, int]:
    """Largest distance between rows of p (and q, default p) by blocked brute force."""
    q = p if q is None else q
    best, bi, bj = -1.0, 0, 0
    qq = np.einsum("ij,ij->i", q, q)
    for s in range(0, len(p), 2048):
        blk = p[s : s + 2048]
        d2 = np.einsum("ij,ij->i", blk, blk)[:, None] + qq[None, :] - 2.0 * blk @ q.T
        k = int(np.argmax(d2))
        i, j = divmod(k, len(q))
        # Recompute the winner directly: the expanded form loses digits.
        val = float(np.linalg.norm(blk[i] - q[j]))
        if val > best:
            best, bi, bj = val, s + i, j
    return best, bi, bj


def diameter(
    points: FloatArray,
    extremes: tuple[IntArray, FloatArray, FloatArray] | None = None,
) -> dict[str, Any]:
    """Largest distance between two points, with certified bounds (see module docstring).

    ``extremes`` may pass in ``shared_extremes(points)`` when the caller already has it.
    Candidate end points are pruned with per-point upper bounds computed from ever finer
    direction sets; a pair longer than the best one found must have both ends among the
    candidates, so the bounds may use the candidates' own support values.
    """
    n = len(points)
    if n < 2:
        return {"value": 0.0, "upper_bound": 0.0, "exact": True, "endpoints": None}
    c = _center(points)
    x = points - c
    if n <= DIAMETER_BRUTE_FORCE_MAX:
        val, i, j = _max_pair(x)
        return {"value": val, "upper_bound": val, "exact": True,
                "endpoints": [(x[i] + c).tolist(), (x[j] + c).tolist()]}
    ext, mx1, mn1 = extremes if extremes is not None else extreme_points(x, _directions(1)[0])
    best, i, j = _max_pair(x[ext])
    a, b = int(ext[i]), int(ext[j])
    # Double-normal iteration: the farthest point from an end point can only improve the pair.
    for _ in range(8):
        d = np.einsum("ij,ij->i", x - x[a], x - x[a])
        far = int(np.argmax(d))
        dist = float(np.sqrt(d[far]))
        if dist <= best:
            break
        best, b, a = dist, a, far
    # Global bounds first: the enclosing ball (tight for spheres) and the direction widths.
    rmax = float(np.sqrt(np.einsum("ij,ij->i", x, x).max()))
    upper = min(2.0 * rmax, float((mx1 - mn1).max()) / _directions(1)[1])
    exact = False
    cand = np.arange(n)
    for level in (1, 2, 3):
        if upper - best <= DIAMETER_TIGHT * best:
            break
        dirs, cos_cover = _directions(level)
        xc = x[cand]
        r = np.sqrt(np.einsum("ij,ij->i", xc, xc))
        rmax = float(r.max())
        ub = r + rmax  # enclosing-ball bound (tight for spheres)
        mx = np.full(len(dirs), -np.inf)
        mn = np.full(len(dirs), np.inf)
        for s in range(0, len(xc), _CHUNK):
            proj = xc[s : s + _CHUNK] @ dirs.T
            mx = np.maximum(mx, proj.max(axis=0))
            mn = np.minimum(mn, proj.min(axis=0))
        for s in range(0, len(xc), _CHUNK):
            proj = xc[s : s + _CHUNK] @ dirs.T
            # every direction is within the covering angle of a sampled one: |p - q| <=
            # (support - p.d) / cos for the best-aligned sampled direction d
            dir_ub = np.maximum(mx[None, :] - proj, proj - mn[None, :]).max(axis=1) / cos_cover
            np.minimum(ub[s : s + _CHUNK], dir_ub, out=ub[s : s + _CHUNK])
        upper = min(upper, float(ub.max()))
        cand = cand[ub > best]
        if len(cand) <= DIAMETER_BRUTE_FORCE_MAX:
            break
    if len(cand) <= DIAMETER_BRUTE_FORCE_MAX:
        if len(cand) >= 2:
            val, i, j = _max_pair(x[cand])
            if val > best:
                best, a, b = val, int(cand[i]), int(cand[j])
        upper, exact = best, True
    return {"value": best, "upper_bound": max(upper, best), "exact": exact,
            "endpoints": [(x[a] + c).tolist(), (x[b] + c).tolist()]}


def _min_area_rectangle(p2: FloatArray) -> tuple[float, FloatArray]:
    """Minimum-area enclosing rectangle of 2D points: (area, 2x2 rotation rows u, v).

    The optimal rectangle has a side collinear with an edge of the convex hull (Freeman &
    Shapira 1975), so every hull edge direction is tried."""
    from scipy.spatial import ConvexHull

    try:
        hull = p2[ConvexHull(p2).vertices]
    except Exception:  # collinear or too few points: zero area, any orientation
        return 0.0, np.eye(2)
    e = np.roll(hull, -1, axis=0) - hull
    ang = np.arctan2(e[:, 1], e[:, 0])
    c, s_ = np.cos(ang), np.sin(ang)
    u = np.stack([c, s_], axis=1)
    v = np.stack([-s_, c], axis=1)
    pu = hull @ u.T
    pv = hull @ v.T
    areas = (pu.max(axis=0) - pu.min(axis=0)) * (pv.max(axis=0) - pv.min(axis=0))
    k = int(np.argmin(areas))
    return float(areas[k]), np.stack([u[k], v[k]])


def _oriented_box_rotation(points: FloatArray) -> FloatArray:
    """Rotation (rows = box axes) of a small-volume box around ``points``.

    For each distinct facet normal of the convex hull, the box is that normal times the
    minimum-area rectangle of the projection onto the facet plane (the face-flush heuristic
    used by trimesh's ``oriented_bounds``; the minimum-volume box has at least one face flush
    with a hull facet in most cases, O'Rourke 1985 gives the exact edge-pair condition)."""
    from scipy.spatial import ConvexHull

    hull = ConvexHull(points)
    hp = points[hull.vertices]
    # Distinct facet normals, largest facets first; only the OBB_NORMALS largest are tried
    # (the box enclosing all points is exact for whichever orientation wins; only optimality
    # is traded for a bounded cost on round parts whose hulls have hundreds of facets).
    tri = points[hull.simplices]
    facet_area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    rounded = np.round(hull.equations[:, :3], 9)
    _, first, inv = np.unique(rounded, axis=0, return_index=True, return_inverse=True)
    group_area = np.bincount(inv.ravel(), weights=facet_area)
    order = np.lexsort((first, -group_area))[:OBB_NORMALS]
    normals = hull.equations[first[order], :3]
    best_vol, best_rot = np.inf, np.eye(3)
    for n in normals:
        n = n / np.linalg.norm(n)
        # any orthonormal basis of the facet plane
        helper = np.eye(3)[int(np.argmin(np.abs(n)))]
        b1 = np.cross(n, helper)
        b1 /= np.linalg.norm(b1)
        b2 = np.cross(n, b1)
        height = float(np.ptp(hp @ n))
        area, r2 = _min_area_rectangle(hp @ np.stack([b1, b2], axis=1))
        vol = area * height
        if vol < best_vol * (1.0 - 1e-12):  # strict improvement only: deterministic ties
            basis = np.stack([b1, b2])
            best_vol, best_rot = vol, np.stack([r2[0] @ basis, r2[1] @ basis, n])
    return best_rot


def oriented_extents(
    points: FloatArray,
    seed: int,
    extremes: tuple[IntArray, FloatArray, FloatArray] | None = None,
) -> dict[str, Any]:
    """Extents of an oriented box enclosing all ``points`` (sorted, largest first)."""
    n = len(points)
    c = _center(points)
    x = points - c
    if n <= OBB_POINTS:
        subset = x
    else:
        dirs, _ = _directions(1)
        ext = extremes[0] if extremes is not None else extreme_points(x, dirs)[0]
        rng = np.random.default_rng(seed)
        extra = max(OBB_POINTS - len(ext), 0)
        sample = rng.choice(n, size=min(extra, n), replace=False) if extra else np.empty(0, int)
        subset = x[np.unique(np.concatenate([ext, sample]))]
    try:
        rot = _oriented_box_rotation(subset)
    except Exception:  # qhull fails on flat or tiny point sets: fall back to the axes
        rot = np.eye(3)
    local = x @ rot.T
    llo, lhi = bounds(local)
    ext_vals = lhi - llo
    xlo, xhi = bounds(x)
    aabb = xhi - xlo
    if np.prod(aabb) <= np.prod(ext_vals):
        # never report a worse box than the axis-aligned one (flat parts, failed hulls)
        ext_vals = aabb
        rot = np.eye(3)
    return {
        "extents": sorted((float(v) for v in ext_vals), reverse=True),
        "rotation": rot.tolist(),
        "points_used": int(min(n, OBB_POINTS) if n > OBB_POINTS else n),
    }
