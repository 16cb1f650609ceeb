"""Self-intersections: pairs of faces that intersect and share no vertex.

Correct within a single shell, not only between bodies (trimesh cannot detect either: two
overlapping cubes read as watertight with volume 2.0 instead of 1.72, see
shared/notes/mesh-verification.md). Autodesk Netfabb and Blender's 3D-Print Toolbox report the
same quantity (DOMAIN.md §4).

Method
1. Broad phase, non-coplanar: every unique edge is traced as a segment through the shared Embree
   scene. If two triangles in different planes intersect, an edge of one meets the other, so
   every such pair is reached from at least one edge. A segment can cross several faces, so rays
   that hit are re-traced from just past the hit until they reach the edge's far end (bounded
   number of rounds, recorded in the report). The segment skips ``EDGE_END_FRACTION`` of its
   length at both ends so that the faces around its own end points (which it only touches there)
   are not reported. A segment that crosses a face exactly on one of its edges or vertices
   meets all faces around that point at the same distance while a first-hit query reports one,
   so every face hit also stands for the faces sharing a vertex with it. The candidate pairs
   are (each face using the edge) x (face hit and its vertex neighbours).
2. Broad phase, coplanar: rays parallel to a face never hit it, so faces are also grouped by
   their supporting plane (normal quantised to ``PLANE_NORMAL_STEP``, offset bucketed on two
   staggered grids of ``PLANE_OFFSET_STEP`` x model size) and faces whose bounding boxes overlap
   within a group become candidates.
3. Narrow phase: each candidate pair that shares no vertex is decided by the exact closed
   triangle–triangle test in ``predicates`` (coplanar overlaps count).

Faces that are degenerate (zero area) are left out: they are reported as degenerate_faces.
Limits, stated in the report: penetrations shallower than ``EDGE_END_FRACTION`` x edge length
at an edge's end point are not seen by step 1; near-coplanar faces whose quantised normals fall
on different sides of a quantisation step are not paired by step 2 (they are found by step 1
unless they are coplanar to within Embree's float32 precision). Tests compare the count with
an all-pairs brute force on interpenetrating, folded, touching and randomly placed shells.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .predicates import triangles_intersect
from .raycast import RayScene
from .shape import bounds
from .topology import EdgeTable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

EDGE_END_FRACTION = 1e-5
MAX_ROUNDS = 32
PLANE_NORMAL_STEP = 1e-4
PLANE_OFFSET_STEP = 1e-6
MAX_COPLANAR_CANDIDATES = 20_000_000


@dataclass
class SelfIntersectionResult:
    """Count of intersecting face pairs and how it was obtained."""

    pairs: int
    example_pairs: list[list[int]]
    edge_rays: int
    edge_hits: int
    rounds: int
    unresolved_edges: int
    coplanar_candidates: int
    coplanar_truncated: bool
    candidate_pairs: int
    details: dict[str, Any] = field(default_factory=dict)

    def method(self) -> dict[str, Any]:
        return {
            "method": "edge-segment ray casting (Embree) + coplanar plane grouping, "
            "confirmed by exact triangle-triangle tests",
            "definition": "pairs of faces that intersect (closed triangles, coplanar overlaps "
            "included) and share no vertex; degenerate faces excluded",
            "edge_end_fraction": EDGE_END_FRACTION,
            "max_rounds": MAX_ROUNDS,
            "plane_normal_step": PLANE_NORMAL_STEP,
            "plane_offset_step_relative": PLANE_OFFSET_STEP,
            "edge_rays": self.edge_rays,
            "edge_ray_hits": self.edge_hits,
            "rounds": self.rounds,
            "unresolved_edges": self.unresolved_edges,
            "candidate_pairs": self.candidate_pairs,
            "coplanar_candidates": self.coplanar_candidates,
            "coplanar_truncated": self.coplanar_truncated,
            "complete": self.unresolved_edges == 0 and not self.coplanar_truncated,
        }


def _share_vertex(fa: IntArray, fb: IntArray) -> BoolArray:
    """Row-wise: does face ``fa[i]`` share a vertex index with ``fb[i]``?"""
    # Nine column comparisons: ~10x faster than broadcasting to (k, 3, 3) and reducing.
    out = np.zeros(len(fa), dtype=bool)
    for i in range(3):
        col = fa[:, i]
        for j in range(3):
            out |= col == fb[:, j]
    return out


def _with_vertex_neighbours(
    he: IntArray, hf: IntArray, faces: IntArray, usable: BoolArray
) -> tuple[IntArray, IntArray]:
    """Extend (edge, face) hits with (edge, face') for every usable face' sharing a vertex with
    face. Work is proportional to the number of hits, not to the mesh size (apart from one
    mask pass over the faces)."""
    hit_vertices = np.unique(faces[np.unique(hf)])
    marked = np.zeros(int(faces.max()) + 1, dtype=bool)
    marked[hit_vertices] = True
    near = np.flatnonzero(
        (marked[faces[:, 0]] | marked[faces[:, 1]] | marked[faces[:, 2]]) & usable
    )
    # (vertex, face) incidences restricted to the faces around the hit faces, sorted by vertex.
    inc_v = faces[near].ravel()
    inc_f = np.repeat(near, 3)
    order = np.argsort(inc_v, kind="stable")
    inc_v, inc_f = inc_v[order], inc_f[order]
    corner_v = faces[hf].ravel()  # three query vertices per hit
    corner_e = np.repeat(he, 3)
    lo = np.searchsorted(inc_v, corner_v, side="left")
    hi = np.searchsorted(inc_v, corner_v, side="right")
    reps = hi - lo
    offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    new_f = inc_f[np.repeat(lo, reps) + offs]
    new_e = np.repeat(corner_e, reps)
    key = np.unique(np.stack([np.concatenate([he, new_e]), np.concatenate([hf, new_f])], axis=1),
                    axis=0)
    return key[:, 0], key[:, 1]


def _edge_candidates(
    scene: RayScene,
    vertices: FloatArray,
    faces: IntArray,
    et: EdgeTable,
    usable: BoolArray,
    scale: float,
) -> tuple[IntArray, int, int, int, int]:
    """Trace every edge; return candidate face pairs (k, 2) and ray statistics."""
    edges = et.edges
    p0 = np.take(vertices, edges[:, 0], axis=0)
    vec = np.take(vertices, edges[:, 1], axis=0)
    vec -= p0
    # Rays run along the unnormalised edge vector, so t is the fraction of the edge: no
    # lengths or divisions needed for the 1.5 M rays of a 1 M-face mesh.
    ok = (vec[:, 0] != 0) | (vec[:, 1] != 0) | (vec[:, 2] != 0)
    # Start inside the edge rather than with tnear on the vertex: the float32 rounding of the
    # shifted origin moves the ray off the exact edge line, so the two faces sharing the edge
    # (which the ray would otherwise graze along its whole length) are rarely reported.
    origin = vec * EDGE_END_FRACTION
    origin += p0
    del p0
    ray_ids = np.flatnonzero(ok)
    n_edges = len(edges)
    tnear = np.zeros(n_edges)
    tfar = np.full(n_edges, 1.0 - 2.0 * EDGE_END_FRACTION)
    hits_e: list[IntArray] = []
    hits_f: list[IntArray] = []
    rounds = 0
    total_hits = 0
    step_min = 2e-7 * scale
    active = ray_ids
    while len(active) and rounds < MAX_ROUNDS:
        rounds += 1
        if len(active) == n_edges:
            t, prim = scene.first_hit(origin, vec, tnear, tfar)
        else:
            t, prim = scene.first_hit(origin[active], vec[active], tnear[active], tfar[active])
        hit = prim >= 0
        active = active[hit]
        t, prim = t[hit], prim[hit]
        total_hits += len(active)
        if len(active) == 0:
            break
        hits_e.append(active)
        hits_f.append(prim)
        # Continue just past this hit: relative step 1e-6 of the edge, with an absolute floor at
        # the float32 resolution of the model so the same face is not hit again.
        length = np.sqrt(np.einsum("ij,ij->i", vec[active], vec[active]))
        tnear[active] = t + np.maximum(1e-6, step_min / length)
        active = active[tnear[active] < tfar[active]]
    unresolved = len(active)
    if not hits_e:
        return np.empty((0, 2), np.int64), len(ray_ids), 0, rounds, unresolved
    he = np.concatenate(hits_e)
    hf = np.concatenate(hits_f)
    # Drop hits on faces touching the edge's end points and on unusable (degenerate) faces.
    hit_faces = faces[hf]
    e = edges[he]
    touching = (hit_faces == e[:, :1]).any(axis=1) | (hit_faces == e[:, 1:2]).any(axis=1)
    keep = ~touching & usable[hf]
    he, hf = he[keep], hf[keep]
    if len(he) == 0:
        return np.empty((0, 2), np.int64), len(ray_ids), total_hits, rounds, unresolved
    # A segment crossing a face exactly on one of its edges or vertices touches every face
    # around that point at the same distance, but a first-hit query reports only one of them.
    # So each face hit stands for itself and all faces sharing a vertex with it (the exact test
    # discards the ones not actually met).
    he, hf = _with_vertex_neighbours(he, hf, faces, usable)
    # Expand each (edge, face) hit to (face using the edge, face hit).
    starts = np.searchsorted(et.use_edge, he, side="left")
    ends = np.searchsorted(et.use_edge, he, side="right")
    reps = ends - starts
    rep_f = np.repeat(hf, reps)
    offs = np.arange(reps.sum()) - np.repeat(np.cumsum(reps) - reps, reps)
    use_f = et.use_face[np.repeat(starts, reps) + offs]
    pairs = np.stack([np.minimum(use_f, rep_f), np.maximum(use_f, rep_f)], axis=1)
    return pairs, len(ray_ids), total_hits, rounds, unresolved


def coplanar_candidates(
    tri: FloatArray, normals: FloatArray, usable: BoolArray, scale: float, faces: IntArray
) -> tuple[IntArray, bool]:
    """Pairs of faces on (nearly) the same plane whose bounding boxes overlap (broad phase
    step 2 of the module docstring); returns ``(pairs, truncated)``. ``scale`` is the model's
    largest extent (the plane offset tolerance is relative to it)."""
    idx = np.flatnonzero(usable)
    if len(idx) < 2:
        return np.empty((0, 2), np.int64), False
    all_usable = len(idx) == len(tri)
    t = tri if all_usable else tri[idx]  # no 72 MB copy in the common case
    n = normals if all_usable else normals[idx]
    qn = np.rint(n * (1.0 / PLANE_NORMAL_STEP)).astype(np.int64)
    # Canonical sign on the quantised normal (first non-zero of z, y, x positive), so that
    # opposite-facing coplanar faces land in the same group.
    zero_z = qn[:, 2] == 0
    flip = (qn[:, 2] < 0) | (zero_z & ((qn[:, 1] < 0) | ((qn[:, 1] == 0) & (qn[:, 0] < 0))))
    sgn = 1 - 2 * flip.astype(np.int64)
    qn *= sgn[:, None]
    d = np.einsum("ij,ij->i", n, t[:, 0]) * sgn
    step = PLANE_OFFSET_STEP * max(scale, 1e-300)
    # Two staggered offset grids: faces whose offsets differ by less than step/2 share a cell in
    # at least one of them.
    qa = np.floor(d / step).astype(np.int64)
    qb = np.floor(d / step + 0.5).astype(np.int64)
    # One 64-bit hash per (plane cell, grid). A hash collision only adds candidates (the exact
    # test decides), it never loses one.
    nb = 2 * round(1 / PLANE_NORMAL_STEP) + 3
    base = ((qn[:, 0] * nb + qn[:, 1]) * nb + qn[:, 2]).astype(np.uint64)
    ha = _hash2(base, qa.astype(np.uint64) * np.uint64(2))
    hb = _hash2(base, qb.astype(np.uint64) * np.uint64(2) + np.uint64(1))
    k = len(idx)
    ib = max(1, int(2 * k - 1).bit_length())
    keys = np.concatenate([ha, hb])
    keys >>= np.uint64(ib)
    keys <<= np.uint64(ib)
    keys |= np.arange(2 * k, dtype=np.uint64)
    keys.sort()
    member = (keys & np.uint64((1 << ib) - 1)).astype(np.int64) % k
    keys >>= np.uint64(ib)
    new = np.ones(2 * k, dtype=bool)
    np.not_equal(keys[1:], keys[:-1], out=new[1:])
    gid = np.cumsum(new) - 1
    sizes = np.bincount(gid)
    gsize = sizes[gid]
    # elementwise min/max: reducing over the middle axis of (k, 3, 3) is several times slower
    lo = np.minimum(np.minimum(t[:, 0], t[:, 1]), t[:, 2])
    hi = np.maximum(np.maximum(t[:, 0], t[:, 1]), t[:, 2])
    # Groups of exactly two (e.g. the halves of a planar quad) pair directly, no sweep needed.
    p2 = np.flatnonzero(new & (gsize == 2))
    pairs2 = np.stack([member[p2], member[p2 + 1]], axis=1)
    # Most such pairs are neighbours (a planar quad's halves): drop those sharing a vertex now,
    # before they cost anything downstream.
    ga, gb = (pairs2[:, 0], pairs2[:, 1]) if all_usable else (idx[pairs2[:, 0]],
                                                               idx[pairs2[:, 1]])
    pairs2 = pairs2[~_share_vertex(np.take(faces, ga, axis=0), np.take(faces, gb, axis=0))]
    multi = gsize > 2
    if not multi.any():
        pairs2 = idx[pairs2]
        return np.sort(pairs2, axis=1), False
    gid, member = gid[multi], member[multi]
    # Sweep along the axis of largest spread within each group: sort by (group, min) and pair
    # each face with the following faces of its group whose min <= its max (+ tolerance).
    ax = int(np.argmax((hi - lo).sum(axis=0)))
    gmin = float(lo[:, ax].min())
    span = float(hi[:, ax].max() - gmin) + 4 * step + 1e-300
    # Groups are 4 apart on this composite axis and coordinates map into [0, 1], so a search
    # never leaves its group.
    comp_lo = gid * 4.0 + (lo[member, ax] - gmin) / span
    comp_hi = gid * 4.0 + (hi[member, ax] + step - gmin) / span
    order = np.argsort(comp_lo, kind="stable")
    comp_lo, comp_hi, member = comp_lo[order], comp_hi[order], member[order]
    ends = np.searchsorted(comp_lo, comp_hi, side="right")
    pos = np.arange(len(member))
    counts = np.maximum(ends - pos - 1, 0)
    total = int(counts.sum())
    truncated = total > MAX_COPLANAR_CANDIDATES
    if truncated:
        counts = np.minimum(counts, MAX_COPLANAR_CANDIDATES // max(len(counts), 1))
        total = int(counts.sum())
    first = np.repeat(pos, counts)
    offs = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    a, b = member[first], member[first + 1 + offs]
    overlap = ((lo[a] <= hi[b] + step) & (lo[b] <= hi[a] + step)).all(axis=1)
    a = np.concatenate([a[overlap], pairs2[:, 0]])
    b = np.concatenate([b[overlap], pairs2[:, 1]])
    a, b = idx[a], idx[b]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)
    return pairs, truncated


def _hash2(x: npt.NDArray[np.uint64], y: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        h = x * np.uint64(0x9E3779B97F4A7C15) + y
        h ^= h >> np.uint64(31)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(29)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(32)
    return h


def _unique_pairs(pairs: IntArray, n_faces: int) -> IntArray:
    """Sorted unique rows of (a, b) face pairs, via one int64 key per pair."""
    if len(pairs) == 0:
        return pairs
    key = pairs[:, 0] * n_faces + pairs[:, 1]
    key = np.unique(key)
    return np.stack([key // n_faces, key % n_faces], axis=1)


def find_self_intersections(
    scene: RayScene,
    vertices: FloatArray,
    faces: IntArray,
    et: EdgeTable,
    usable: BoolArray,
    normals: FloatArray,
    max_examples: int = 10,
    tri: FloatArray | None = None,
    coplanar: tuple[IntArray, bool] | None = None,
) -> SelfIntersectionResult:
    """Count face pairs that intersect and share no vertex (see module docstring).

    ``vertices``/``faces`` are the welded mesh; ``usable`` marks non-degenerate faces; ``et`` is
    the edge table of those faces; ``normals`` are unit face normals. ``coplanar`` may pass in
    the result of ``coplanar_candidates`` computed earlier (e.g. in another thread).
    Deterministic.
    """
    lo, hi = bounds(vertices)
    scale = float(np.max(hi - lo)) if len(vertices) else 1.0
    if tri is None:
        tri = np.take(vertices, faces, axis=0)
    ray_pairs, n_rays, n_hits, rounds, unresolved = _edge_candidates(
        scene, vertices, faces, et, usable, scale
    )
    if coplanar is None:
        coplanar = coplanar_candidates(tri, normals, usable, scale, faces)
    cop_pairs, truncated = coplanar
    pairs = np.concatenate([ray_pairs, cop_pairs])
    if len(pairs):
        pairs = pairs[(pairs[:, 0] != pairs[:, 1]) & usable[pairs[:, 0]] & usable[pairs[:, 1]]]
        pairs = pairs[~_share_vertex(np.take(faces, pairs[:, 0], axis=0),
                                     np.take(faces, pairs[:, 1], axis=0))]
        pairs = _unique_pairs(pairs, len(faces))
    n_candidates = len(pairs)
    if n_candidates:
        hit = triangles_intersect(tri[pairs[:, 0]], tri[pairs[:, 1]])
        found = pairs[hit]
    else:
        found = np.empty((0, 2), np.int64)
    return SelfIntersectionResult(
        pairs=len(found),
        example_pairs=[[int(a), int(b)] for a, b in found[:max_examples]],
        edge_rays=n_rays,
        edge_hits=n_hits,
        rounds=rounds,
        unresolved_edges=unresolved,
        coplanar_candidates=len(cop_pairs),
        coplanar_truncated=truncated,
        candidate_pairs=n_candidates,
    )
