"""Measurements on generated meshes whose properties are known exactly."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pdm_meshgen as G
import pytest

from pdm_records.geometry import Mesh, check_mesh_bytes, measure
from pdm_records.geometry.predicates import triangles_intersect
from pdm_records.geometry.topology import weld_exact

SCHEMA = Path(__file__).resolve().parents[3] / "pdm_records" / "schemas" / "check-mesh.schema.json"


def _mesh(part: tuple[np.ndarray, np.ndarray]) -> Mesh:
    v, f = part
    return Mesh(np.array(v, dtype=float), np.array(f, dtype=np.int64), "stl", "mm")


@cache
def _measured(name: str) -> dict[str, Any]:
    return measure(_mesh(PARTS[name]()), thickness_samples=2000)


def _brute_force_self_intersections(part: tuple[np.ndarray, np.ndarray]) -> int:
    """Independent oracle for the broad phase: test every face pair."""
    v, f = np.asarray(part[0], float), np.asarray(part[1])
    i, j = np.triu_indices(len(f), 1)
    share = (f[i][:, :, None] == f[j][:, None, :]).any(axis=(1, 2))
    i, j = i[~share], j[~share]
    return int(triangles_intersect(v[f[i]], v[f[j]]).sum())


def _open_box() -> tuple[np.ndarray, np.ndarray]:
    v, f = G.box((0, 0, 0), (1, 1, 1))
    return v, f[2:]  # the bottom side removed


def _flipped() -> tuple[np.ndarray, np.ndarray]:
    v, f = G.box((0, 0, 0), (1, 1, 1))
    f = f.copy()
    f[5] = f[5][::-1]
    return v, f


def _fin() -> tuple[np.ndarray, np.ndarray]:
    # A third face on the cube edge (0,0,0)-(1,0,0): that edge is used three times.
    v, f = G.box((0, 0, 0), (1, 1, 1))
    v2 = np.vstack([v, [[0.5, -1.0, 0.5]]])
    return v2, np.vstack([f, [[0, 1, 8]]])


def _degenerate_and_duplicate() -> tuple[np.ndarray, np.ndarray]:
    v, f = G.box((0, 0, 0), (1, 1, 1))
    v2 = np.vstack([v, [[0.5, 0.0, 0.0]]])  # on the edge (0,0,0)-(1,0,0)
    extra = np.array([
        [0, 1, 8],  # collinear: zero area
        [0, 0, 1],  # repeated vertex: zero area
        f[3][[1, 2, 0]],  # same vertex set as face 3
    ])
    return v2, np.vstack([f, extra])


PARTS = {
    "cube": lambda: G.box((0, 0, 0), (10, 20, 30)),
    "hollow": lambda: G.hollow_box(10.0, 1.0),
    "open": _open_box,
    "flipped": _flipped,
    "fin": _fin,
    "two_bodies": lambda: G.combine(G.box((0, 0, 0), (1, 1, 1)), G.box((3, 0, 0), (4, 1, 1))),
    "cubes": lambda: G.combine(G.box((0, 0, 0), (1, 1, 1)),
                               G.box((0.5, 0.5, 0.5), (1.5, 1.5, 1.5))),
    "folded": G.folded_bar,
    "sphere": lambda: G.uv_sphere(5.0, 24, 32),
    "degenerate": _degenerate_and_duplicate,
    "inside_out": lambda: G.invert(G.box((0, 0, 0), (2, 2, 2))),
}


def test_cube_volume_area_extents() -> None:
    m = _measured("cube")
    assert m["faces"] == 12 and m["vertices"] == 8 and m["edges"] == 18
    assert m["volume"] == pytest.approx(6000.0, rel=1e-12)
    assert m["area"] == pytest.approx(2 * (200 + 600 + 300), rel=1e-12)
    assert m["extents"] == [30.0, 20.0, 10.0]
    assert m["oriented_extents"] == pytest.approx([30.0, 20.0, 10.0], rel=1e-6)
    assert m["diameter"] == pytest.approx(np.sqrt(100 + 400 + 900), rel=1e-12)
    assert m["diameter_exact"] is True
    assert m["watertight"] is True and m["winding_consistent"] is True
    assert m["bodies"] == 1 and m["euler_number"] == 2
    assert m["self_intersections"] == 0
    assert m["degenerate_faces"] == 0 and m["duplicate_faces"] == 0
    # bottom side (20 x 10) faces straight down
    assert m["overhang_area"] == pytest.approx(200.0)


def test_hollow_box_wall_thickness_is_one_mm() -> None:
    m = _measured("hollow")
    th = m["thickness"]
    assert th["min"] == pytest.approx(1.0, rel=0.01)
    assert th["p1"] == pytest.approx(1.0, rel=0.01)
    assert th["median"] >= th["p5"] >= th["p1"] >= th["min"]
    assert th["method"] == "ray" and th["samples"] == 2000 and th["misses"] == 0
    assert len(th["min_location"]) == 3
    assert m["volume"] == pytest.approx(1000 - 512)
    assert m["bodies"] == 2 and m["euler_number"] == 4
    assert m["self_intersections"] == 0


def test_open_box_has_boundary_edges() -> None:
    m = _measured("open")
    assert m["watertight"] is False
    assert m["boundary_edges"] == 4
    assert m["non_manifold_edges"] == 0
    assert m["volume"] is None  # undefined for an open surface
    assert m["euler_number"] == 1


def test_flipped_face_breaks_winding() -> None:
    m = _measured("flipped")
    assert m["watertight"] is True
    assert m["winding_consistent"] is False
    assert m["volume"] is None


def test_non_manifold_edge() -> None:
    m = _measured("fin")
    assert m["non_manifold_edges"] == 1
    assert m["boundary_edges"] == 2
    assert m["winding_consistent"] is None  # not meaningful on non-manifold input
    assert m["watertight"] is False


def test_two_bodies() -> None:
    m = _measured("two_bodies")
    assert m["bodies"] == 2
    assert m["watertight"] is True
    assert m["volume"] == pytest.approx(2.0)
    assert m["self_intersections"] == 0


def test_interpenetrating_cubes_are_found() -> None:
    m = _measured("cubes")
    assert m["watertight"] is True  # what trimesh also says; the defect is elsewhere
    assert m["self_intersections"] > 0
    assert m["self_intersections"] == _brute_force_self_intersections(PARTS["cubes"]())


def test_single_shell_pushed_through_itself() -> None:
    m = _measured("folded")
    assert m["bodies"] == 1 and m["watertight"] is True and m["winding_consistent"] is True
    assert m["self_intersections"] > 0
    assert m["self_intersections"] == _brute_force_self_intersections(G.folded_bar())


def test_clean_sphere_has_no_self_intersections() -> None:
    m = _measured("sphere")
    assert m["self_intersections"] == 0
    assert m["watertight"] is True and m["euler_number"] == 2
    assert m["diameter"] == pytest.approx(10.0, rel=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_self_intersections_match_brute_force_on_random_placements(seed: int) -> None:
    rng = np.random.default_rng(seed)
    parts = []
    for _ in range(3):
        v, f = G.uv_sphere(1.0, 6, 8)
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        parts.append((v @ q.T + rng.uniform(-1.0, 1.0, 3), f))
    part = G.combine(*parts)
    m = measure(_mesh(part), thickness_samples=0)
    assert m["self_intersections"] == _brute_force_self_intersections(part)


def test_coplanar_contact_between_shells_counts() -> None:
    # Box B sits on box A; their touching sides overlap in the plane z = 1 (no shared vertex).
    part = G.combine(G.box((0, 0, 0), (1, 1, 1)), G.box((0.5, 0.25, 1), (1.5, 0.75, 2)))
    m = measure(_mesh(part), thickness_samples=0)
    assert m["self_intersections"] > 0
    assert m["self_intersections"] == _brute_force_self_intersections(part)


def test_only_collapsed_faces_is_not_watertight() -> None:
    m = measure(_mesh((np.array([[0.0, 0, 0], [1, 0, 0]]), np.array([[0, 0, 1]]))),
                thickness_samples=10)
    assert m["watertight"] is False and m["degenerate_faces"] == 1 and m["bodies"] == 0
    assert m["thickness"]["min"] is None and m["volume"] is None


def test_degenerate_and_duplicate_faces() -> None:
    m = _measured("degenerate")
    assert m["degenerate_faces"] == 2
    assert m["duplicate_faces"] == 1
    assert m["non_manifold_edges"] >= 1  # the duplicate face reuses edges


def test_inside_out_mesh_is_reported_and_still_measured() -> None:
    m = _measured("inside_out")
    assert m["signed_volume"] == pytest.approx(-8.0)
    assert m["volume"] == pytest.approx(8.0)
    assert m["thickness"]["min"] == pytest.approx(2.0, rel=1e-5)


def test_exact_weld_does_not_merge_near_equal_points() -> None:
    v = np.array([[0.0, 0, 0], [np.nextafter(0.0, 1.0), 0, 0], [-0.0, 0, 0], [1.0, 2, 3]])
    uv, inv = weld_exact(v)
    assert len(uv) == 3  # -0.0 equals +0.0, the next float up does not
    assert inv[0] == inv[2] and inv[0] != inv[1]
    np.testing.assert_array_equal(uv[inv], v + 0.0)


def test_gap_of_one_ulp_keeps_the_mesh_open() -> None:
    v, f = G.box((0, 0, 0), (1, 1, 1))
    v = np.vstack([v, [[np.nextafter(1.0, 2.0), 1.0, 1.0]]])  # vertex 6 moved by one ulp
    f = f.copy()
    f[2] = [4, 5, 8]  # one face uses the nudged copy
    m = measure(_mesh((v, f)), thickness_samples=0, check_self_intersections=False)
    assert m["watertight"] is False and m["boundary_edges"] > 0


def test_metres_declared_as_mm_warns() -> None:
    data = G.binary_stl(*G.box((0, 0, 0), (0.05, 0.04, 0.01)))  # a 50 mm part drawn in metres
    report = check_mesh_bytes(data, "stl", "mm", expected_max_extent_mm=50.0,
                              thickness_samples=200)
    units = [w for w in report["warnings"] if w["code"] == "units_suspect"]
    assert len(units) == 1 and "metres" in units[0]["message"]
    ok = check_mesh_bytes(data, "stl", "m", expected_max_extent_mm=50.0, thickness_samples=200)
    assert not [w for w in ok["warnings"] if w["code"] == "units_suspect"]
    mm_part = G.binary_stl(*G.box((0, 0, 0), (50.0, 40.0, 10.0)))
    wrong = check_mesh_bytes(mm_part, "stl", "m", expected_max_extent_mm=50.0,
                             thickness_samples=100)
    msgs = [w["message"] for w in wrong["warnings"] if w["code"] == "units_suspect"]
    assert len(msgs) == 1 and "millimetres but was declared in metres" in msgs[0]


def test_inches_declared_as_mm_warns() -> None:
    data = G.binary_stl(*G.box((0, 0, 0), (2.0, 1.0, 0.5)))  # 2 inches long
    report = check_mesh_bytes(data, "stl", "mm", expected_max_extent_mm=50.8,
                              thickness_samples=100)
    assert any("inches" in w["message"] for w in report["warnings"])


def test_report_is_deterministic_and_matches_schema() -> None:
    data = G.binary_stl(*G.folded_bar())
    envelope = {"max_extents": [10.0, 5.0, 2.0], "min_wall_thickness": 0.5,
                "no_self_intersections": True, "watertight_required": True}
    a = check_mesh_bytes(data, "stl", "mm", envelope, thickness_samples=500, seed=3)
    b = check_mesh_bytes(data, "stl", "mm", envelope, thickness_samples=500, seed=3)
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    c = check_mesh_bytes(data, "stl", "mm", envelope, thickness_samples=500, seed=4)
    assert c["measurements"]["thickness"] != a["measurements"]["thickness"]  # the seed matters
    assert a["evaluation"]["passed"] is False
    assert "no_self_intersections" in a["evaluation"]["failed"]
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(a, schema)
    json.dumps(a, allow_nan=False)  # strict JSON: no NaN or Infinity anywhere


def test_report_records_method_and_versions() -> None:
    report = check_mesh_bytes(G.binary_stl(*G.hollow_box()), "stl", thickness_samples=100)
    sw = report["software"]
    assert sw["trimesh"] and sw["embreex"] and sw["numpy"] == np.__version__
    methods = report["measurements"]["methods"]
    assert "bit-identical" in methods["weld"]
    assert methods["self_intersections"]["complete"] is True
    assert report["input"]["sha256"] and report["input"]["units"] == "mm"


def test_thickness_fails_closed_without_embree(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm_records.geometry import RayEngineUnavailable, raycast

    monkeypatch.setattr(raycast, "engine_available", lambda: False)
    with pytest.raises(RayEngineUnavailable):
        measure(_mesh(G.box((0, 0, 0), (1, 1, 1))))


def test_embreex_fallback_engine_gives_the_same_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm_records.geometry import raycast

    part = G.hollow_box()
    fast = measure(_mesh(part), thickness_samples=300)
    monkeypatch.setattr(raycast._EmbreeLib, "get", classmethod(lambda cls: None))
    slow = measure(_mesh(part), thickness_samples=300)
    assert slow["methods"]["ray_engine"]["engine"] == "embreex"
    assert fast["methods"]["ray_engine"]["engine"] == "embree-ctypes"
    assert slow["thickness"]["min"] == pytest.approx(fast["thickness"]["min"], rel=1e-6)
    assert slow["self_intersections"] == fast["self_intersections"] == 0
