"""Exact triangle-triangle intersection on hand-made configurations."""

from __future__ import annotations

import numpy as np
import pytest

from pdm_records.geometry.predicates import orient3d, triangles_intersect

BASE = np.array([[0.0, 0, 0], [4, 0, 0], [0, 4, 0]])


def _hit(other: list[list[float]]) -> bool:
    return bool(triangles_intersect(BASE[None], np.array(other, dtype=float)[None])[0])


@pytest.mark.parametrize(
    ("other", "expected"),
    [
        ([[1, 1, -1], [1, 1, 1], [2, 1, 1]], True),  # pierces the interior
        ([[1, 1, 0.5], [3, 1, 0.5], [1, 3, 0.5]], False),  # parallel, above
        ([[1, 1, 0], [1, 1, 2], [2, 1, 2]], True),  # touches with a vertex (closed triangles)
        ([[5, 5, -1], [5, 5, 1], [6, 5, 1]], False),  # crosses the plane outside
        ([[1, 1, 0], [5, 1, 0], [1, 5, 0]], True),  # coplanar overlap
        ([[5, 5, 0], [7, 5, 0], [5, 7, 0]], False),  # coplanar, apart
        ([[1, 1, 0], [2, 1, 0], [1, 2, 0]], True),  # coplanar, contained
        ([[-1, 1, 0], [5, 1, 0], [2, -3, 0]], True),  # coplanar, edges cross only
        ([[4, 0, -1], [4, 0, 1], [5, 0, 0]], True),  # touches the corner (4,0,0) with an edge
        ([[2, 2.0000001, -1], [2, 2.0000001, 1], [3, 3, 0]], False),  # passes just outside
    ],
)
def test_triangle_pairs(other: list[list[float]], expected: bool) -> None:
    assert _hit(other) is expected
    # symmetric
    assert bool(triangles_intersect(np.array(other, float)[None], BASE[None])[0]) is expected


def test_orient3d_is_exact_where_float_arithmetic_is_not() -> None:
    # Four points that are coplanar in exact arithmetic but whose naive determinant is not 0.
    a = np.array([[0.1, 0.2, 0.3]])
    b = np.array([[0.4, 0.5, 0.6]])
    c = np.array([[0.7, 0.8, 0.9000000000000001]])
    d = (a + b) / 2  # may not lie exactly on the line, but the sign must be consistent
    s1 = orient3d(a, b, c, d)[0]
    s2 = orient3d(b, a, c, d)[0]
    assert s1 == -s2
    e = np.array([[1e-20, 0.0, 0.0]])
    assert orient3d(np.zeros((1, 3)), np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]),
                    np.array([[0, 0, 1e-300]]))[0] != 0
    assert orient3d(np.zeros((1, 3)), np.array([[1.0, 0, 0]]), np.array([[0, 1.0, 0]]), e)[0] == 0


def test_edge_table_slow_path_matches_fast_path() -> None:
    import pdm_meshgen as G

    from pdm_records.geometry.topology import edge_table

    v, f = G.folded_bar()
    fast = edge_table(f, len(v))
    slow = edge_table(f, 2**40)  # keys no longer fit in 63 bits: lexsort path
    np.testing.assert_array_equal(fast.edges, slow.edges)
    np.testing.assert_array_equal(fast.counts, slow.counts)
    np.testing.assert_array_equal(np.sort(fast.use_face), np.sort(slow.use_face))
    assert fast.use_forward.sum() == slow.use_forward.sum()


def test_diameter_pruning_is_exact_on_an_elongated_cloud() -> None:
    from pdm_records.geometry.shape import _max_pair, diameter

    rng = np.random.default_rng(5)
    pts = rng.normal(size=(6000, 3)) * [30.0, 10.0, 2.0]
    d = diameter(pts)
    brute, _, _ = _max_pair(pts - pts.mean(axis=0))
    assert d["exact"] is True
    assert d["value"] == pytest.approx(brute, rel=1e-12)
    assert d["upper_bound"] == d["value"]


def test_oriented_extents_of_a_rotated_box_and_plate() -> None:
    import pdm_meshgen as G

    from pdm_records.geometry.shape import oriented_extents

    rng = np.random.default_rng(7)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    v, _f = G.box((0, 0, 0), (30, 20, 5))
    assert oriented_extents(v @ q.T + 3.0, 0)["extents"] == pytest.approx([30, 20, 5], rel=1e-9)
    plate = rng.uniform(-1, 1, (20000, 3)) * [75.0, 50.0, 1.5]
    ext = oriented_extents(plate @ q.T, 0)["extents"]
    # encloses every point (>= true extents of the sample) and is close to optimal
    assert ext[0] == pytest.approx(150.0, rel=0.01) and ext[1] == pytest.approx(100.0, rel=0.01)
    assert 2.9 <= ext[2] <= 3.2


def test_icosphere_directions_cover_the_sphere() -> None:
    from pdm_records.geometry.shape import _directions

    dirs, cos_cover = _directions(1)
    probe = np.random.default_rng(0).normal(size=(20000, 3))
    probe /= np.linalg.norm(probe, axis=1)[:, None]
    assert np.abs(probe @ dirs.T).max(axis=1).min() >= cos_cover - 1e-12


def test_weld_survives_hash_collisions(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm_records.geometry import topology

    v = np.random.default_rng(3).integers(0, 4, size=(500, 3)).astype(float)
    expected_unique = len(np.unique(v, axis=0))

    def constant_hash(x: np.ndarray, tmp: np.ndarray) -> None:
        x[:] = 12345  # every point collides

    monkeypatch.setattr(topology, "_mix_inplace", constant_hash)
    uv, inv = topology.weld_exact(v)
    assert len(uv) == expected_unique
    np.testing.assert_array_equal(uv[inv], v)
