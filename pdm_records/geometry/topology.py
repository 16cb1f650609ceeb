"""Exact position weld and edge topology on plain numpy arrays.

Why not trimesh's own properties: its default processing merges vertices within
``trimesh.tol.merge`` (1e-8), which can close real gaps and can make a closed manifold mesh
non-manifold, and the generic ``np.unique(axis=0)`` paths cost seconds at 1 M faces
(shared/notes/mesh-verification.md). Everything here is built on one 64-bit sort each:

- weld: vertices are equal iff their float64 coordinates are bit-identical (after -0.0 is
  normalised to +0.0). A 64-bit hash of the coordinate bits is sorted together with the row index
  packed into its low bits (``np.sort`` on int64 is SIMD-accelerated; ``argsort`` is ~5x slower),
  then equal neighbours are verified coordinate by coordinate, so a hash collision can never merge
  two different points (collisions fall back to an exact lexicographic sort).
- edges: each directed half-edge becomes one int64 key ``(lo, hi, direction, corner)``; after a
  sort, runs of equal ``(lo, hi)`` are the undirected edges and their lengths are the use counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

WELD_RULE = (
    "exact position weld: vertices merged iff their float64 coordinates (in mm, after unit "
    "conversion of the file's values) are bit-identical; -0.0 equals +0.0; no tolerance"
)

_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_NEG_ZERO = np.uint64(0x8000000000000000)


def _mix_inplace(x: npt.NDArray[np.uint64], tmp: npt.NDArray[np.uint64]) -> None:
    """splitmix64 finaliser applied in place (in place: temporaries dominate at 3 M rows)."""
    np.right_shift(x, _S30, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M2, out=x)
    np.right_shift(x, _S27, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M3, out=x)
    np.right_shift(x, _S31, out=tmp)
    np.bitwise_xor(x, tmp, out=x)


def _bits(n: int) -> int:
    """Bits needed to store integers in ``[0, n)``."""
    return max(1, int(n - 1).bit_length())


def weld_exact(vertices: FloatArray) -> tuple[FloatArray, IntArray]:
    """Merge bit-identical positions.

    Returns ``(unique_vertices, inverse)`` with ``unique_vertices[inverse] == vertices``
    (``-0.0`` read as ``+0.0``). The order of ``unique_vertices`` is deterministic for a given
    input but otherwise unspecified.
    """
    n = len(vertices)
    v = np.ascontiguousarray(vertices, dtype=np.float64)
    if n == 0:
        return v.copy(), np.empty(0, np.int64)
    ib = _bits(n)
    if ib > 40:  # absurdly many vertices: too few hash bits would be left, use the exact path
        return _weld_lexsort(v + 0.0)
    u = v.view(np.uint64)
    # Hash the coordinate bits column by column (no full copy of the coordinates), with the bit
    # pattern of -0.0 mapped to that of +0.0.
    h = np.empty(n, dtype=np.uint64)
    tmp = np.empty_like(h)
    for col in range(3):
        np.copyto(tmp, u[:, col])
        tmp[tmp == _NEG_ZERO] = 0
        if col == 0:
            np.add(tmp, _M1, out=h)
        else:
            h += tmp
        _mix_inplace(h, tmp)
    # Keep the top (64 - ib) hash bits and pack the row index into the low bits, so one plain
    # sort yields both the grouping and the permutation.
    h >>= np.uint64(ib)
    h <<= np.uint64(ib)
    h |= np.arange(n, dtype=np.uint64)
    h.sort()
    order = (h & np.uint64((1 << ib) - 1)).astype(np.int64)
    h >>= np.uint64(ib)
    new = np.empty(n, dtype=bool)
    new[0] = True
    np.not_equal(h[1:], h[:-1], out=new[1:])
    # Number the unique vertices in order of first appearance in the file (the first member of
    # each group has the smallest index, because the index is the key's low part). Hash order
    # would scatter neighbouring vertices across memory and made ray tracing 3x slower.
    first = order[new]
    is_first = np.zeros(n, dtype=bool)
    is_first[first] = True
    file_rank = np.cumsum(is_first, dtype=np.int64)
    file_rank -= 1
    uid = np.repeat(file_rank[first], np.diff(np.append(np.flatnonzero(new), n)))
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = uid
    del h, tmp, order, file_rank, uid
    unique = np.take(v, np.flatnonzero(is_first), axis=0) + 0.0  # -0.0 + 0.0 == +0.0
    # Exactness check: every vertex must equal the representative of its hash group (checked
    # in chunks to bound memory; float == treats -0.0 and +0.0 as equal). A hash collision
    # between different points is vanishingly rare; it takes the slow exact path.
    step = 1 << 20
    for s in range(0, n, step):
        if not np.array_equal(np.take(unique, inverse[s : s + step], axis=0), v[s : s + step]):
            return _weld_lexsort(v + 0.0)
    return unique, inverse


def _weld_lexsort(v: FloatArray) -> tuple[FloatArray, IntArray]:
    order = np.lexsort((v[:, 2], v[:, 1], v[:, 0]))
    sv = v[order]
    new = np.ones(len(v), dtype=bool)
    new[1:] = (sv[1:] != sv[:-1]).any(axis=1)
    uid = np.cumsum(new, dtype=np.int64) - 1
    inverse = np.empty(len(v), dtype=np.int64)
    inverse[order] = uid
    return sv[new], inverse


@dataclass(frozen=True)
class EdgeTable:
    """Undirected edges of the welded mesh and which faces use them.

    ``edges``: ``(e, 2)`` vertex pairs ``lo < hi``; ``counts``: uses per edge;
    ``use_face``/``use_edge``/``use_forward``: one row per half-edge use, sorted by edge, giving
    the face, the edge index and whether the face traverses the edge lo->hi.
    """

    edges: IntArray
    counts: IntArray
    use_face: IntArray
    use_edge: IntArray
    use_forward: BoolArray


def edge_table(faces: IntArray, n_vertices: int, active: BoolArray | None = None) -> EdgeTable:
    """Build the edge table of welded ``faces``; faces with ``active == False`` are ignored.

    Zero-length edges (a face with a repeated vertex) are never included: such faces must be
    excluded via ``active`` by the caller (they are reported as degenerate instead).
    """
    face_ids = np.arange(len(faces), dtype=np.int64)
    if active is not None:
        face_ids = face_ids[active]
        faces = faces[active]
    m = len(faces)
    if m == 0:
        z = np.empty(0, np.int64)
        return EdgeTable(np.empty((0, 2), np.int64), z, z, z, np.empty(0, bool))
    a = np.ascontiguousarray(faces).ravel()
    b = faces[:, [1, 2, 0]].ravel()
    vb = _bits(n_vertices)
    cb = _bits(3 * m)
    if 2 * vb + 1 + cb <= 63:
        # One int64 key per half-edge: (lo, hi, forward, corner), built in place to keep the
        # peak memory low. Sorting keys, not argsort: numpy's int64 sort is SIMD-accelerated
        # and ~5x faster than argsort.
        key = np.minimum(a, b)
        key <<= vb
        key |= np.maximum(a, b)
        key <<= 1
        key |= a < b
        del b
        key <<= cb
        key |= np.arange(3 * m, dtype=np.int64)
        key.sort()
        corner = key & ((1 << cb) - 1)
        key >>= cb
        use_forward = (key & 1).astype(bool)
        key >>= 1
        ekey = key
        new = np.empty(3 * m, dtype=bool)
        new[0] = True
        np.not_equal(ekey[1:], ekey[:-1], out=new[1:])
        starts = np.flatnonzero(new)
        counts = np.diff(np.append(starts, 3 * m)).astype(np.int64)
        first_key = ekey[starts]
        edges = np.stack([first_key >> vb, first_key & ((1 << vb) - 1)], axis=1)
        del key, ekey
        use_edge = np.cumsum(new, dtype=np.int64)
        use_edge -= 1
        corner //= 3
        use_face = face_ids[corner]
        return EdgeTable(edges, counts, use_face, use_edge, use_forward)
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    # Slow path (keys do not fit in 63 bits: millions of vertices and faces): exact
    # lexicographic sort of (lo, hi).
    corner = np.lexsort((hi, lo))
    ekey = np.stack([lo[corner], hi[corner]], axis=1)
    new = np.ones(3 * m, dtype=bool)
    new[1:] = (ekey[1:] != ekey[:-1]).any(axis=1)
    starts = np.flatnonzero(new)
    counts = np.diff(np.append(starts, 3 * m)).astype(np.int64)
    first = corner[starts]
    edges = np.stack([lo[first], hi[first]], axis=1)
    use_edge = np.cumsum(new, dtype=np.int64) - 1
    use_face = face_ids[corner // 3]
    use_forward = (a[corner] < b[corner])
    return EdgeTable(edges, counts, use_face, use_edge, use_forward)


@dataclass(frozen=True)
class Topology:
    """Topological facts of the welded mesh (see ``analyse``)."""

    n_vertices: int
    n_edges: int
    boundary_edges: int
    non_manifold_edges: int
    winding_consistent: bool | None
    euler_number: int
    bodies: int
    face_body: IntArray


def analyse(faces: IntArray, n_vertices: int, active: BoolArray) -> tuple[Topology, EdgeTable]:
    """Edge counts, winding, Euler number and edge-connected bodies of the ``active`` faces.

    Definitions (documented in the report):
    - boundary edge: used by exactly one face; non-manifold edge: used by more than two;
      watertight: no boundary and no non-manifold edges.
    - winding_consistent: every edge used by two faces is traversed in opposite directions by
      them (each directed edge appears once). Only meaningful on manifold input, so it is
      ``None`` when non-manifold edges exist (trimesh can report True there).
    - bodies: connected components of faces, two faces connected when they share an edge.
    - euler_number: V - E + F over the active faces and the vertices they use.
    """
    et = edge_table(faces, n_vertices, active)
    counts = et.counts
    boundary = int((counts == 1).sum())
    non_manifold = int((counts > 2).sum())
    if non_manifold:
        winding: bool | None = None
    else:
        pair_edges = counts[et.use_edge] == 2
        fw = et.use_forward[pair_edges].reshape(-1, 2)  # uses of one edge are adjacent
        winding = bool((fw[:, 0] != fw[:, 1]).all())
    act_faces = faces if bool(active.all()) else faces[active]
    used = np.zeros(n_vertices, dtype=bool)
    used[act_faces.ravel()] = True
    v_used = int(used.sum())
    euler = v_used - len(et.edges) + len(act_faces)
    face_body, n_bodies = _bodies(et, len(faces), active)
    topo = Topology(
        n_vertices=v_used,
        n_edges=len(et.edges),
        boundary_edges=boundary,
        non_manifold_edges=non_manifold,
        winding_consistent=winding,
        euler_number=int(euler),
        bodies=n_bodies,
        face_body=face_body,
    )
    return topo, et


def _bodies(et: EdgeTable, n_faces: int, active: BoolArray) -> tuple[IntArray, int]:
    """Label faces by edge-connected component (inactive faces get -1); also the count.

    scipy numbers components in order of their lowest node, so labels are deterministic."""
    # Consecutive uses of the same edge link their faces (a chain per edge is enough).
    same = et.use_edge[1:] == et.use_edge[:-1]
    src = et.use_face[:-1][same]
    dst = et.use_face[1:][same]
    all_active = bool(active.all())
    idx = np.flatnonzero(active)
    k = len(idx)
    if k == 0:
        return np.full(n_faces, -1, dtype=np.int64), 0
    if not all_active:
        remap = np.full(n_faces, -1, dtype=np.int64)
        remap[idx] = np.arange(k)
        src, dst = remap[src], remap[dst]
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(k, k)).tocsr()
    n_comp, labels = connected_components(graph, directed=True, connection="weak")
    if all_active:
        return labels.astype(np.int64), int(n_comp)
    out = np.full(n_faces, -1, dtype=np.int64)
    out[idx] = labels
    return out, int(n_comp)


def duplicate_faces(faces: IntArray, n_vertices: int) -> int:
    """Number of faces whose vertex set equals that of an earlier face (so a pair counts 1)."""
    s = np.sort(faces, axis=1)
    vb = _bits(n_vertices)
    if 3 * vb <= 63:
        key = (s[:, 0] << (2 * vb)) | (s[:, 1] << vb) | s[:, 2]
        key.sort()
        return int((key[1:] == key[:-1]).sum())
    u = np.unique(s, axis=0)
    return int(len(s) - len(u))
