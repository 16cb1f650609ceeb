"""The 3D preview's GLB: colours follow the measured wall thickness, the face cap holds, the
file is valid glTF that another reader (trimesh) parses back, markers point at the defects."""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np
import pdm_meshgen as G
import pytest
import trimesh

from pdm_records.geometry import Mesh, MeshError, check_mesh_bytes
from pdm_records.geometry.preview import (
    NOT_MEASURED_COLOR,
    WARNING_COLOR,
    build_preview,
    hex_to_rgb,
    report_markers,
)
from tests.viewer_support import hollow_box, stl


def _mesh(v: np.ndarray, f: np.ndarray) -> Mesh:
    return Mesh(np.array(v, dtype=float), np.array(f, dtype=np.int64), "stl", "mm")


def _linear(color: str) -> tuple[int, int, int]:
    """The sRGB colour as stored in a glTF COLOR_0 (linear, 8 bit)."""
    out = []
    for c in hex_to_rgb(color):
        s = c / 255.0
        out.append(round((s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4) * 255))
    return (out[0], out[1], out[2])


def _parse(glb: bytes) -> tuple[trimesh.Scene, trimesh.Trimesh, np.ndarray]:
    """Read the GLB with trimesh: the scene, the design mesh (mm, file axes), face colours."""
    scene = trimesh.load(io.BytesIO(glb), file_type="glb", process=False)
    assert isinstance(scene, trimesh.Scene)
    design = scene.geometry["design"]
    colors = np.asarray(design.visual.vertex_attributes["color"])[:, :3]
    corner = colors[design.faces]
    assert (corner == corner[:, :1]).all(), "every face has one flat colour"
    return scene, design, corner[:, 0]


def _thin_faces(centroids: np.ndarray) -> np.ndarray:
    """Faces of the default hollow box whose inward ray crosses only the 1 mm x- wall: the
    cavity's x = 1 side, and the outer x = 0 side where the cavity is behind it (y, z in
    (3, 37); nearer the edges the ray runs along the y or z wall instead)."""
    x, y, z = centroids.T
    inner = np.isclose(x, 1.0)
    outer = np.isclose(x, 0.0) & (y > 3) & (y < 37) & (z > 3) & (z < 37)
    return inner | outer  # type: ignore[no-any-return]


def test_the_warning_colour_is_exactly_on_the_thin_wall() -> None:
    v, f = hollow_box()  # walls: x- 1 mm, x+ 5 mm, y and z 3 mm
    preview = build_preview(_mesh(v, f), min_wall=2.0)
    _, design, face_colors = _parse(preview.glb)
    centroids = design.vertices[design.faces].mean(axis=1)
    expected = _thin_faces(centroids)
    warned = (face_colors == _linear(WARNING_COLOR)).all(axis=1)
    assert np.isclose(centroids[expected, 0], 1.0).sum() == 8 * 8 * 2  # the cavity's side
    assert np.isclose(centroids[expected, 0], 0.0).sum() > 60  # and most of the outer side
    assert (warned == expected).all()
    scale = preview.legend["scale"]
    classes = {c["key"]: c for c in scale["classes"]}
    assert classes["below_min"]["faces"] == expected.sum()
    assert scale["envelope_min"] == 2.0 and scale["lower"] == 2.0
    # Every other face has a ramp colour, and the 3 mm and 5 mm walls differ.
    ramp = {c["key"]: _linear(c["color"]) for c in scale["classes"]
            if c["key"].startswith("band_")}
    others = [tuple(c) for c in face_colors[~warned]]
    assert set(others) <= set(ramp.values())
    y_wall = (face_colors[np.isclose(centroids[:, 1], 3.0)])
    x_thick = (face_colors[np.isclose(centroids[:, 0], 35.0)])
    assert len({tuple(c) for c in y_wall}) == 1 and len({tuple(c) for c in x_thick}) == 1
    assert tuple(y_wall[0]) != tuple(x_thick[0])


def test_the_glb_is_valid_gltf_in_metres_with_y_up_around_the_file_coordinates() -> None:
    v, f = hollow_box()
    preview = build_preview(_mesh(v, f), min_wall=2.0)
    glb = preview.glb
    magic, version, length = struct.unpack_from("<4sII", glb)
    assert (magic, version, length) == (b"glTF", 2, len(glb))
    json_len, kind = struct.unpack_from("<I4s", glb, 12)
    assert kind == b"JSON" and json_len % 4 == 0
    doc = json.loads(glb[20:20 + json_len])
    assert doc["asset"]["version"] == "2.0"
    assert doc["asset"]["extras"] == {"format": "pdm-preview/1", "units": "mm", "up": "+Z"}
    attributes = doc["meshes"][0]["primitives"][0]["attributes"]
    assert set(attributes) == {"POSITION", "COLOR_0"}  # no normals, no upload metadata
    scene, design, _ = _parse(glb)
    assert len(design.faces) == len(f)
    # The design keeps the file's coordinates (mm) ...
    assert np.allclose(design.bounds, [[0, 0, 0], [40, 40, 40]])
    got = np.sort(design.vertices[design.faces].mean(axis=1).round(4), axis=0)
    want = np.sort(v[f].mean(axis=1).round(4), axis=0)
    assert np.allclose(got, want)
    # ... and the scene shows it in metres with +Y up: (x, y, z) mm -> (x, z, -y) m.
    assert np.allclose(scene.to_geometry().bounds, [[0, 0, -0.04], [0.04, 0.04, 0]])
    assert preview.legend["glb_bytes"] == len(glb)
    assert preview.legend["simplified"] is False and preview.legend["faces"] == len(f)


def test_a_mesh_over_the_face_cap_is_simplified_under_it() -> None:
    v, f = hollow_box(n=24)  # 13,824 faces
    assert len(f) == 13_824
    preview = build_preview(_mesh(v, f), min_wall=2.0, max_faces=3000)
    legend = preview.legend
    assert legend["simplified"] is True and legend["source_faces"] == 13_824
    assert 0 < legend["faces"] <= 3000 and legend["face_cap"] == 3000
    assert "at most 3000 faces" in legend["simplification"]
    _, design, face_colors = _parse(preview.glb)
    assert len(design.faces) == legend["faces"] <= 3000
    warned = (face_colors == _linear(WARNING_COLOR)).all(axis=1)
    centroids = design.vertices[design.faces].mean(axis=1)
    assert warned.any()
    assert (centroids[warned, 0] < 1.0 + 1e-6).all()  # still only the thin wall
    uncapped = build_preview(_mesh(v, f), min_wall=2.0)
    assert uncapped.legend["faces"] == 13_824 and uncapped.legend["glb_bytes"] > len(
        preview.glb)


def test_without_an_envelope_minimum_there_is_no_warning_colour() -> None:
    v, f = hollow_box()
    preview = build_preview(_mesh(v, f), min_wall=None)
    _, _, face_colors = _parse(preview.glb)
    assert not (face_colors == _linear(WARNING_COLOR)).all(axis=1).any()
    keys = [c["key"] for c in preview.legend["scale"]["classes"]]
    assert "below_min" not in keys and preview.legend["scale"]["envelope_min"] is None
    assert preview.legend["scale"]["lower"] <= 1.0  # the ramp starts at the thinnest wall


def test_rays_that_leave_an_open_mesh_are_not_measured() -> None:
    v = np.array([[0, 0, 0], [10, 0, 0], [10, 10, 0], [0, 10, 0]], dtype=float)
    f = np.array([[0, 1, 2], [0, 2, 3]])
    preview = build_preview(_mesh(v, f), min_wall=1.0)
    _, _, face_colors = _parse(preview.glb)
    assert (face_colors == _linear(NOT_MEASURED_COLOR)).all()
    classes = {c["key"]: c for c in preview.legend["scale"]["classes"]}
    assert classes["not_measured"]["faces"] == 2 and classes["below_min"]["faces"] == 0
    assert preview.legend["thickness"]["measured_faces"] == 0


def test_the_same_mesh_gives_the_same_bytes() -> None:
    v, f = hollow_box()
    assert build_preview(_mesh(v, f), min_wall=2.0).glb == build_preview(
        _mesh(v, f), min_wall=2.0).glb


def test_a_mesh_with_only_zero_area_faces_is_refused() -> None:
    v = np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]], dtype=float)
    with pytest.raises(MeshError) as caught:
        build_preview(_mesh(v, np.array([[0, 1, 2]])))
    assert caught.value.code == "no_faces"


def _report(v: np.ndarray, f: np.ndarray, envelope: dict[str, Any]) -> dict[str, Any]:
    return check_mesh_bytes(stl(v, f), "stl", "mm", envelope, thickness_samples=2000)


def test_markers_point_at_the_thinnest_wall_and_say_whether_it_failed() -> None:
    v, f = hollow_box()
    failing = _report(v, f, {"min_wall_thickness": 2.0})
    markers = report_markers(failing, _mesh(v, f))
    assert [m["kind"] for m in markers] == ["thinnest_wall"]
    (thin,) = markers
    assert thin["severity"] == "fail" and thin["check"] == "min_wall_thickness"
    assert thin["position"] == failing["measurements"]["thickness"]["min_location"]
    assert thin["position"][0] == pytest.approx(0.0, abs=1e-6) or thin["position"][0] == (
        pytest.approx(1.0))  # on the 1 mm wall
    assert "envelope minimum 2 mm" in thin["label"]
    passing = report_markers(_report(v, f, {"min_wall_thickness": 0.5}), _mesh(v, f))
    assert passing[0]["severity"] == "info"
    preview = build_preview(_mesh(v, f), min_wall=2.0, markers=markers)
    assert preview.legend["markers"] == [{"index": 1, **thin}]


def test_markers_at_self_intersections_lie_where_the_shells_overlap() -> None:
    v, f = G.combine(G.box((0, 0, 0), (2, 2, 2)), G.box((1, 1, 1), (3, 3, 3)))
    report = _report(v, f, {"no_self_intersections": True})
    markers = [m for m in report_markers(report, _mesh(v, f))
               if m["kind"] == "self_intersection"]
    assert markers and all(m["severity"] == "fail" for m in markers)
    for m in markers:
        assert all(0.0 <= c <= 3.0 for c in m["position"])
        assert m["check"] == "no_self_intersections"


def test_markers_at_open_edges_of_an_open_box() -> None:
    v, f = G.box((0, 0, 0), (10, 10, 10))
    f = f[2:]  # the bottom (z = 0) removed: its four edges are open
    report = _report(v, f, {"watertight_required": True})
    markers = [m for m in report_markers(report, _mesh(v, f)) if m["kind"] == "boundary_edge"]
    assert len(markers) == 4  # the bottom square's four edges (its diagonal went with it)
    assert all(m["position"][2] == 0.0 and m["severity"] == "fail" for m in markers)
    assert all("4 in all" in m["label"] for m in markers)


def test_markers_at_the_diameter_ends_only_when_the_diameter_check_failed() -> None:
    v, f = G.box((0, 0, 0), (10, 10, 10))
    over = report_markers(_report(v, f, {"max_diameter": 5.0}), _mesh(v, f))
    ends = [m for m in over if m["kind"] == "diameter_end"]
    assert len(ends) == 2 and all(m["severity"] == "fail" for m in ends)
    span = np.linalg.norm(np.subtract(ends[0]["position"], ends[1]["position"]))
    assert span == pytest.approx(np.sqrt(300.0))
    within = report_markers(_report(v, f, {"max_diameter": 50.0}), _mesh(v, f))
    assert not [m for m in within if m["kind"] == "diameter_end"]
