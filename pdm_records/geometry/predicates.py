"""Exact orientation predicates and triangle–triangle intersection, vectorised.

Signs are computed in float64 with Shewchuk's static error bounds ("Adaptive Precision
Floating-Point Arithmetic and Fast Robust Geometric Predicates", 1997: ``o3derrboundA``,
``ccwerrboundA``); rows whose magnitude is inside the bound are recomputed exactly with Python
rationals (every float64 is a rational number, so the result is the exact sign for the given
coordinates). Uncertain rows are rare (touching or coplanar configurations), so the slow path
costs nothing on ordinary meshes.

``triangles_intersect`` decides whether two closed triangles share at least one point, exactly.
Non-coplanar pairs: two triangles in different planes intersect iff an edge of one meets the
other (the end points of their common segment lie on edges). Coplanar pairs: intersection of the
2D projections (edge crossings or containment), as in Möller 1997 / Guigue–Devillers 2003.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

_EPS = 2.0**-53
_O3D_BOUND = (7.0 + 56.0 * _EPS) * _EPS
_O2D_BOUND = (3.0 + 16.0 * _EPS) * _EPS


def orient3d(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray) -> IntArray:
    """Exact sign of det[a-d, b-d, c-d] per row (+1, 0, -1); inputs ``(k, 3)``.

    Positive when ``d`` lies below the plane through a, b, c oriented counter-clockwise when
    seen from above (Shewchuk's convention). Only the sign's consistency matters here.
    """
    ad = a - d
    bd = b - d
    cd = c - d
    x1 = bd[:, 1] * cd[:, 2]
    x2 = bd[:, 2] * cd[:, 1]
    y1 = cd[:, 1] * ad[:, 2]
    y2 = cd[:, 2] * ad[:, 1]
    z1 = ad[:, 1] * bd[:, 2]
    z2 = ad[:, 2] * bd[:, 1]
    det = ad[:, 0] * (x1 - x2) + bd[:, 0] * (y1 - y2) + cd[:, 0] * (z1 - z2)
    perm = (
        np.abs(ad[:, 0]) * (np.abs(x1) + np.abs(x2))
        + np.abs(bd[:, 0]) * (np.abs(y1) + np.abs(y2))
        + np.abs(cd[:, 0]) * (np.abs(z1) + np.abs(z2))
    )
    sign = np.sign(det).astype(np.int64)
    unsure = np.flatnonzero(np.abs(det) <= _O3D_BOUND * perm)
    for i in unsure:
        sign[i] = _orient3d_exact(a[i], b[i], c[i], d[i])
    return sign


def _orient3d_exact(a: FloatArray, b: FloatArray, c: FloatArray, d: FloatArray) -> int:
    fa = [Fraction(float(x)) for x in a]
    fb = [Fraction(float(x)) for x in b]
    fc = [Fraction(float(x)) for x in c]
    fd = [Fraction(float(x)) for x in d]
    ad = [fa[i] - fd[i] for i in range(3)]
    bd = [fb[i] - fd[i] for i in range(3)]
    cd = [fc[i] - fd[i] for i in range(3)]
    det = (
        ad[0] * (bd[1] * cd[2] - bd[2] * cd[1])
        + bd[0] * (cd[1] * ad[2] - cd[2] * ad[1])
        + cd[0] * (ad[1] * bd[2] - ad[2] * bd[1])
    )
    return (det > 0) - (det < 0)


def orient2d(a: FloatArray, b: FloatArray, c: FloatArray) -> IntArray:
    """Exact sign of det[a-c, b-c] per row; inputs ``(k, 2)``."""
    acx = a[:, 0] - c[:, 0]
    bcx = b[:, 0] - c[:, 0]
    acy = a[:, 1] - c[:, 1]
    bcy = b[:, 1] - c[:, 1]
    left = acx * bcy
    right = acy * bcx
    det = left - right
    sign = np.sign(det).astype(np.int64)
    unsure = np.flatnonzero(np.abs(det) <= _O2D_BOUND * (np.abs(left) + np.abs(right)))
    for i in unsure:
        fa = [Fraction(float(x)) for x in a[i]]
        fb = [Fraction(float(x)) for x in b[i]]
        fc = [Fraction(float(x)) for x in c[i]]
        e = (fa[0] - fc[0]) * (fb[1] - fc[1]) - (fa[1] - fc[1]) * (fb[0] - fc[0])
        sign[i] = (e > 0) - (e < 0)
    return sign


def _segment_meets_triangle(
    p: FloatArray, q: FloatArray, a: FloatArray, b: FloatArray, c: FloatArray,
    sp: IntArray, sq: IntArray,
) -> BoolArray:
    """Closed segment pq vs closed triangle abc, given the plane signs of p and q.

    Segments lying in the triangle's plane return False: for non-coplanar triangle pairs the
    other five edge tests cover that case.
    """
    cand = (sp * sq <= 0) & ~((sp == 0) & (sq == 0))
    out = np.zeros(len(p), dtype=bool)
    idx = np.flatnonzero(cand)
    if len(idx) == 0:
        return out
    p, q, a, b, c = p[idx], q[idx], a[idx], b[idx], c[idx]
    o1 = orient3d(p, q, a, b)
    o2 = orient3d(p, q, b, c)
    o3 = orient3d(p, q, c, a)
    ok = ((o1 >= 0) & (o2 >= 0) & (o3 >= 0)) | ((o1 <= 0) & (o2 <= 0) & (o3 <= 0))
    out[idx] = ok
    return out


def _segments_cross_2d(p: FloatArray, q: FloatArray, r: FloatArray, s: FloatArray) -> BoolArray:
    """Closed 2D segments pq and rs share a point."""
    d1 = orient2d(p, q, r)
    d2 = orient2d(p, q, s)
    d3 = orient2d(r, s, p)
    d4 = orient2d(r, s, q)
    proper = (d1 * d2 <= 0) & (d3 * d4 <= 0)
    collinear = (d1 == 0) & (d2 == 0)
    # Collinear segments: they meet iff their bounding boxes overlap.
    lo1, hi1 = np.minimum(p, q), np.maximum(p, q)
    lo2, hi2 = np.minimum(r, s), np.maximum(r, s)
    box = ((lo1 <= hi2) & (lo2 <= hi1)).all(axis=1)
    return np.where(collinear, box, proper)


def _point_in_triangle_2d(p: FloatArray, a: FloatArray, b: FloatArray, c: FloatArray) -> BoolArray:
    o1 = orient2d(a, b, p)
    o2 = orient2d(b, c, p)
    o3 = orient2d(c, a, p)
    return ((o1 >= 0) & (o2 >= 0) & (o3 >= 0)) | ((o1 <= 0) & (o2 <= 0) & (o3 <= 0))


def _coplanar_intersect(ta: FloatArray, tb: FloatArray) -> BoolArray:
    """Closed coplanar triangles ``(k, 3, 3)``: do their projections intersect?"""
    n = np.cross(tb[:, 1] - tb[:, 0], tb[:, 2] - tb[:, 0])
    drop = np.argmax(np.abs(n), axis=1)
    keep = np.array([[1, 2], [0, 2], [0, 1]])[drop]  # project along the dominant axis: exact
    rows = np.arange(len(ta))[:, None]
    a2 = np.stack([ta[rows, i, keep] for i in range(3)], axis=1)
    b2 = np.stack([tb[rows, i, keep] for i in range(3)], axis=1)
    hit = np.zeros(len(ta), dtype=bool)
    for i in range(3):
        for j in range(3):
            hit |= _segments_cross_2d(a2[:, i], a2[:, (i + 1) % 3], b2[:, j], b2[:, (j + 1) % 3])
    hit |= _point_in_triangle_2d(a2[:, 0], b2[:, 0], b2[:, 1], b2[:, 2])
    hit |= _point_in_triangle_2d(b2[:, 0], a2[:, 0], a2[:, 1], a2[:, 2])
    return hit


def triangles_intersect(ta: FloatArray, tb: FloatArray) -> BoolArray:
    """Exact test: do closed triangles ``ta[i]`` and ``tb[i]`` (``(k, 3, 3)``) share a point?

    Degenerate (zero-area) triangles must be filtered out by the caller.
    """
    k = len(ta)
    out = np.zeros(k, dtype=bool)
    if k == 0:
        return out
    # Signs of A's vertices against B's plane and of B's vertices against A's plane.
    sa = np.stack([orient3d(tb[:, 0], tb[:, 1], tb[:, 2], ta[:, i]) for i in range(3)], axis=1)
    sb = np.stack([orient3d(ta[:, 0], ta[:, 1], ta[:, 2], tb[:, i]) for i in range(3)], axis=1)
    separated = (sa > 0).all(axis=1) | (sa < 0).all(axis=1) | (sb > 0).all(axis=1) | (
        sb < 0
    ).all(axis=1)
    coplanar = (sa == 0).all(axis=1)
    todo = np.flatnonzero(~separated & ~coplanar)
    if len(todo):
        a, b = ta[todo], tb[todo]
        s_a, s_b = sa[todo], sb[todo]
        hit = np.zeros(len(todo), dtype=bool)
        for i in range(3):
            j = (i + 1) % 3
            hit |= _segment_meets_triangle(a[:, i], a[:, j], b[:, 0], b[:, 1], b[:, 2],
                                           s_a[:, i], s_a[:, j])
            hit |= _segment_meets_triangle(b[:, i], b[:, j], a[:, 0], a[:, 1], a[:, 2],
                                           s_b[:, i], s_b[:, j])
        out[todo] = hit
    cop = np.flatnonzero(coplanar & ~separated)
    if len(cop):
        out[cop] = _coplanar_intersect(ta[cop], tb[cop])
    return out
