"""A compact GLB preview of a design, coloured by wall thickness, for the browser.

The browser never gets the uploaded file: it gets this derived, regenerable preview (no record
of its own). The rules, stated once here and in ``docs/viewer.md``:

- **Geometry.** Positions are welded exactly (bit-identical coordinates, as in the report);
  zero-area faces are dropped. A mesh with more than ``max_faces`` faces (default
  :data:`DEFAULT_MAX_FACES`) is simplified by quadric edge collapse (``fast-simplification``)
  to at most that many faces; the legend says so and names both face counts.
- **Thickness.** One ray per displayed face, from its centroid along the inward face normal,
  with the report's ray method (:func:`.thickness.ray_thickness`): the distance to the first
  surface the ray meets. Rays that leave the part (open meshes) are "not measured".
- **Colours.** A face thinner than the envelope's minimum wall thickness gets the warning
  colour; every other measured face gets one of at most :data:`BANDS` bands of a colour-blind-safe
  ramp (viridis, yellow = thinnest, purple = thickest) starting exactly at the envelope
  minimum. Colours are per face (flat), so a band boundary never blurs across a face.
- **Format.** glTF 2.0 binary: one indexed triangle mesh (``POSITION`` float32,
  ``COLOR_0`` normalised RGBA8 in linear space as glTF requires, ``uint16``/``uint32``
  indices), no normals (the viewer shades flat). The design node keeps the file's
  coordinates (mm, +Z up) and sits under a root node that scales to metres and turns +Z up
  into glTF's +Y up, so any glTF viewer shows it the right way up and size.
- **Markers** (locations of failed checks, e.g. the thinnest sampled wall, example
  self-intersections, boundary edges) travel in the JSON legend beside the GLB, in the file's
  coordinates (mm), see :func:`report_markers`.

Pure: numpy, Embree (through :mod:`.raycast`) and fast-simplification; no Flask, no database.
Deterministic: the same mesh and parameters give the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import MeshError
from .mesh import Mesh
from .raycast import RayScene
from .shape import bounds, face_geometry_full, signed_volume
from .thickness import SurfaceSample, ray_thickness
from .topology import weld_exact

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Bumped whenever the bytes or the legend of a preview change for the same input: cached
#: previews of another format are rebuilt.
PREVIEW_FORMAT = "pdm-preview/1"
#: Face cap of the GLB: larger meshes are simplified to at most this many faces.
DEFAULT_MAX_FACES = 100_000
#: Number of colour bands above the envelope minimum.
BANDS = 8
#: Colour of faces thinner than the envelope minimum (sRGB).
WARNING_COLOR = "#e0115f"
#: Colour of faces whose ray left the part (open meshes).
NOT_MEASURED_COLOR = "#9aa0a6"
#: Viridis control points (matplotlib's colour map, CC0), from 0 (purple) to 1 (yellow).
_VIRIDIS = (
    (0.00, (0x44, 0x01, 0x54)), (0.13, (0x48, 0x28, 0x78)), (0.25, (0x3e, 0x4a, 0x89)),
    (0.38, (0x31, 0x68, 0x8e)), (0.50, (0x26, 0x82, 0x8e)), (0.63, (0x1f, 0x9e, 0x89)),
    (0.75, (0x35, 0xb7, 0x79)), (0.88, (0x8f, 0xd7, 0x44)), (1.00, (0xfd, 0xe7, 0x25)),
)
#: The darkest part of viridis reads as black once lit: the ramp stops short of it.
_RAMP_START = 0.18
#: Markers of one kind kept at most (examples, not an inventory).
MAX_MARKERS_PER_KIND = 10

_MIN_WALL_CHECK = "min_wall_thickness"


@dataclass(frozen=True)
class Preview:
    """The GLB bytes and the JSON-ready legend that describes them."""

    glb: bytes
    legend: dict[str, Any]


def viridis(x: float) -> tuple[int, int, int]:
    """The viridis colour at ``x`` in [0, 1] (linear interpolation between control points)."""
    x = min(max(x, 0.0), 1.0)
    for (x0, c0), (x1, c1) in itertools.pairwise(_VIRIDIS):
        if x <= x1:
            f = (x - x0) / (x1 - x0)
            r, g, b = (round(a + (b_ - a) * f) for a, b_ in zip(c0, c1, strict=True))
            return (r, g, b)
    return _VIRIDIS[-1][1]


def band_colors(bands: int = BANDS) -> list[str]:
    """Hex colours of the bands, thinnest first (yellow) to thickest (purple)."""
    out = []
    for i in range(bands):
        x = 1.0 - (i + 0.5) / bands * (1.0 - _RAMP_START)
        r, g, b = viridis(x)
        out.append(f"#{r:02x}{g:02x}{b:02x}")
    return out


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    value = int(color.lstrip("#"), 16)
    return ((value >> 16) & 255, (value >> 8) & 255, value & 255)


def _srgb_to_linear_u8(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """glTF vertex colours are linear: convert sRGB 0-255 to linear 0-255 (rounded)."""
    out = []
    for c in rgb:
        s = c / 255.0
        lin = s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4
        out.append(round(lin * 255.0))
    return (out[0], out[1], out[2])


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k that is >= ``raw`` (``raw`` > 0)."""
    exp = math.floor(math.log10(raw))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = m * 10.0**exp
        if step >= raw * (1 - 1e-12):
            return float(step)
    return float(10.0 ** (exp + 1))  # pragma: no cover - the loop always returns


def _weighted_quantile(values: FloatArray, weights: FloatArray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    if cum[-1] <= 0:
        return float(values[order[-1]])
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(values[order[min(i, len(order) - 1)]])


def _simplify(vertices: FloatArray, faces: IntArray, max_faces: int) -> tuple[FloatArray,
                                                                             IntArray]:
    import fast_simplification

    target = max_faces
    for _ in range(6):
        v, f = fast_simplification.simplify(vertices, faces.astype(np.int32),
                                            target_count=target)
        if len(f) <= max_faces:
            return np.asarray(v, np.float64), np.asarray(f, np.int64)
        target = max(4, int(target * 0.9))
    raise MeshError("unsupported", f"the mesh could not be simplified to {max_faces} faces "
                    "for the 3D preview")


def _scale(thickness: FloatArray, area: FloatArray, min_wall: float | None,
           bands: int) -> tuple[float, float, int]:
    """(lower end, band width, number of bands) of the colour ramp.

    The ramp starts at the envelope minimum when there is one (so its lower end *is* the
    limit), else at the thinnest measured face rounded down to the band width. Its top is the
    smaller of the area-weighted 95th percentile and twice the area-weighted median of the
    measured faces: long rays along a wall or through a cavity (box edges, corners) would
    otherwise squash every real wall into one colour. The width is a "nice" number (1, 2, 2.5
    or 5 x 10^k); faces above the top get the last band ("≥ ...").
    """
    finite = np.isfinite(thickness)
    if not finite.any():
        lower = float(min_wall) if min_wall is not None else 0.0
        return lower, 1.0 if lower <= 0 else _nice_step(lower / bands), bands
    vals, w = thickness[finite], area[finite]
    top = min(_weighted_quantile(vals, w, 0.95), 2.0 * _weighted_quantile(vals, w, 0.5))
    low = float(vals.min())
    start = float(min_wall) if min_wall is not None else low
    span = max(top - start, abs(start) * 0.5, 1e-6)
    width = _nice_step(span / bands)
    lower = start if min_wall is not None else math.floor(low / width) * width
    count = min(max(math.ceil((top - lower) / width - 1e-9), 3), bands)
    return lower, width, count


def build_preview(
    mesh: Mesh,
    *,
    min_wall: float | None = None,
    max_faces: int = DEFAULT_MAX_FACES,
    bands: int = BANDS,
    markers: Sequence[Mapping[str, Any]] = (),
) -> Preview:
    """Build the thickness-coloured GLB of ``mesh`` (in mm) and its legend.

    ``min_wall`` is the envelope's minimum wall thickness in mm (None: no warning colour).
    ``markers`` (see :func:`report_markers`) are numbered and copied into the legend.
    Raises ``MeshError`` when nothing with area is left to show and ``RayEngineUnavailable``
    without Embree.
    """
    if max_faces < 4:
        raise ValueError("max_faces must be at least 4")
    uv, inv = weld_exact(mesh.vertices)
    faces = np.take(inv, mesh.faces)
    source_faces = len(faces)
    _, _, _, degenerate = face_geometry_full(np.take(uv, faces, axis=0))
    faces = faces[~degenerate]
    if len(faces) == 0:
        raise MeshError("no_faces", "the mesh has no face with an area to show")
    used, faces = np.unique(faces, return_inverse=True)
    faces = faces.reshape(-1, 3)
    vertices = uv[used]
    simplified = len(faces) > max_faces
    if simplified:
        vertices, faces = _simplify(vertices, faces, max_faces)
        _, _, _, degenerate = face_geometry_full(np.take(vertices, faces, axis=0))
        faces = faces[~degenerate]
        used, faces = np.unique(faces, return_inverse=True)
        faces = faces.reshape(-1, 3)
        vertices = vertices[used]

    tri = np.take(vertices, faces, axis=0)
    cross, area, normals, _ = face_geometry_full(tri)
    lo, hi = bounds(vertices)
    size = float((hi - lo).max())
    vol = signed_volume(tri, (lo + hi) / 2.0, cross)
    centroids = tri.mean(axis=1)
    scene = RayScene(vertices, faces)
    sample = SurfaceSample(centroids, np.arange(len(faces), dtype=np.int64), normals)
    thickness, _ = ray_thickness(scene, sample, size, inward_sign=1.0 if vol < 0 else -1.0)
    del scene

    lower, width, bands = _scale(thickness, area, min_wall, bands)
    upper = lower + width * bands
    measured = np.isfinite(thickness)
    band = np.clip(np.floor((np.where(measured, thickness, lower) - lower) / width), 0,
                   bands - 1).astype(np.int64)
    # Class per face: 0..bands-1 ramp, bands = below the minimum, bands + 1 = not measured.
    below = measured & (thickness < min_wall) if min_wall is not None else np.zeros_like(
        measured)
    cls = np.where(measured, np.where(below, bands, band), bands + 1)

    ramp = band_colors(bands)
    palette_hex = [*ramp, WARNING_COLOR, NOT_MEASURED_COLOR]
    palette = np.array([(*_srgb_to_linear_u8(hex_to_rgb(c)), 255) for c in palette_hex],
                       dtype=np.uint8)

    # One output vertex per (vertex, colour class) pair: vertices are shared within a colour
    # region and split only along colour boundaries (flat colours, compact index buffer).
    n_cls = bands + 2
    keys = faces * n_cls + cls[:, None]
    unique_keys, corner_index = np.unique(keys.ravel(), return_inverse=True)
    out_positions = vertices[unique_keys // n_cls].astype(np.float32)
    out_colors = palette[unique_keys % n_cls]
    out_indices = corner_index.reshape(-1, 3)

    glb = encode_glb(out_positions, out_colors, out_indices, extras={
        "format": PREVIEW_FORMAT, "units": "mm", "up": "+Z"})

    total_area = float(area.sum())
    classes: list[dict[str, Any]] = []
    if min_wall is not None:
        classes.append(_class_entry("below_min", WARNING_COLOR, cls == bands, area, total_area,
                                    label=f"< {_fmt(min_wall)} mm: below the envelope "
                                    "minimum", upper=float(min_wall)))
    for i in range(bands):
        a, b = lower + i * width, lower + (i + 1) * width
        label = f"{_fmt(a)}–{_fmt(b)} mm" if i < bands - 1 else f"≥ {_fmt(a)} mm"
        classes.append(_class_entry(f"band_{i}", ramp[i], cls == i, area, total_area,
                                    label=label, lower=a, upper=b if i < bands - 1 else None))
    classes.append(_class_entry("not_measured", NOT_MEASURED_COLOR, cls == bands + 1, area,
                                total_area, label="not measured (the ray left the part)"))
    fin = thickness[measured]
    legend: dict[str, Any] = {
        "format": PREVIEW_FORMAT,
        "units": "mm",
        "up": "+Z",
        "source_faces": source_faces,
        "faces": len(faces),
        "vertices": len(out_positions),
        "face_cap": max_faces,
        "simplified": simplified,
        "simplification": ("quadric edge collapse (fast-simplification) to at most "
                           f"{max_faces} faces; colours measured on the simplified mesh")
        if simplified else None,
        "bounds": {"min": [float(x) for x in lo], "max": [float(x) for x in hi]},
        "thickness": {
            "method": "ray from each displayed face's centroid along the inward face normal "
                      "to the first surface (the report's ray method, one ray per face)",
            "min": float(fin.min()) if len(fin) else None,
            "max": float(fin.max()) if len(fin) else None,
            "measured_faces": int(measured.sum()),
        },
        "scale": {"envelope_min": None if min_wall is None else float(min_wall),
                  "lower": lower, "upper": upper, "band_width": width, "bands": bands,
                  "classes": classes},
        "markers": [{"index": i + 1, **dict(m)} for i, m in enumerate(markers)],
        "glb_bytes": len(glb),
        "glb_sha256": hashlib.sha256(glb).hexdigest(),
    }
    return Preview(glb=glb, legend=legend)


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def _class_entry(key: str, color: str, mask: npt.NDArray[np.bool_], area: FloatArray,
                 total_area: float, *, label: str, lower: float | None = None,
                 upper: float | None = None) -> dict[str, Any]:
    share = float(area[mask].sum()) / total_area if total_area > 0 else 0.0
    return {"key": key, "color": color, "label": label, "lower": lower, "upper": upper,
            "faces": int(mask.sum()), "area_fraction": share}


# -- GLB encoding --------------------------------------------------------------------------

_FLOAT, _UBYTE, _USHORT, _UINT = 5126, 5121, 5123, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
# Column-major: (x, y, z) in mm with +Z up -> (x, z, -y) in metres with +Y up (glTF).
_TO_GLTF = [0.001, 0, 0, 0, 0, 0, -0.001, 0, 0, 0.001, 0, 0, 0, 0, 0, 1]


def encode_glb(positions: npt.NDArray[np.float32], colors: npt.NDArray[np.uint8],
               indices: IntArray, *, extras: Mapping[str, Any] | None = None) -> bytes:
    """A glTF 2.0 binary with one indexed, vertex-coloured triangle mesh (see module doc)."""
    n = len(positions)
    index_type, index_dtype = (_USHORT, "<u2") if n <= 65535 else (_UINT, "<u4")
    parts = [np.ascontiguousarray(positions, "<f4").tobytes(),
             np.ascontiguousarray(colors, np.uint8).tobytes(),
             np.ascontiguousarray(indices, index_dtype).tobytes()]
    views, offset, blob = [], 0, bytearray()
    for data, target in zip(parts, (_ARRAY_BUFFER, _ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER),
                            strict=True):
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data),
                      "target": target})
        blob += data
        pad = (-len(blob)) % 4
        blob += b"\x00" * pad
        offset = len(blob)
    lo = positions.min(axis=0) if n else np.zeros(3)
    hi = positions.max(axis=0) if n else np.zeros(3)
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": f"pdm-records {PREVIEW_FORMAT}",
                  "extras": dict(extras or {})},
        "scene": 0,
        "scenes": [{"name": "preview", "nodes": [0]}],
        "nodes": [{"name": "preview", "matrix": _TO_GLTF, "children": [1]},
                  {"name": "design", "mesh": 0}],
        "meshes": [{"name": "design", "primitives": [{
            "attributes": {"POSITION": 0, "COLOR_0": 1}, "indices": 2, "material": 0,
            "mode": 4}]}],
        "materials": [{"name": "thickness", "doubleSided": True, "pbrMetallicRoughness": {
            "baseColorFactor": [1.0, 1.0, 1.0, 1.0], "metallicFactor": 0.0,
            "roughnessFactor": 0.75}}],
        "accessors": [
            {"bufferView": 0, "componentType": _FLOAT, "count": n, "type": "VEC3",
             "min": [float(x) for x in lo], "max": [float(x) for x in hi]},
            {"bufferView": 1, "componentType": _UBYTE, "normalized": True, "count": n,
             "type": "VEC4"},
            {"bufferView": 2, "componentType": index_type, "count": int(indices.size),
             "type": "SCALAR"},
        ],
        "bufferViews": views,
        "buffers": [{"byteLength": len(blob)}],
    }
    head = json.dumps(gltf, separators=(",", ":"), sort_keys=True).encode()
    head += b" " * ((-len(head)) % 4)
    total = 12 + 8 + len(head) + 8 + len(blob)
    return b"".join([
        struct.pack("<4sII", b"glTF", 2, total),
        struct.pack("<I4s", len(head), b"JSON"), head,
        struct.pack("<I4s", len(blob), b"BIN\x00"), bytes(blob),
    ])


# -- markers from a verification report ------------------------------------------------------

def _check_failed(report: Mapping[str, Any], name: str) -> bool | None:
    """True/False when the report evaluated ``name``; None when it did not."""
    check = ((report.get("evaluation") or {}).get("checks") or {}).get(name)
    return None if check is None else not check.get("passed", False)


def _severity(failed: bool | None, defect: bool) -> str:
    if failed:
        return "fail"
    return "warning" if defect else "info"


def report_markers(report: Mapping[str, Any], mesh: Mesh) -> list[dict[str, Any]]:
    """Locations worth pointing at in the viewer, from a verification report of ``mesh``.

    Each marker is ``{"kind", "label", "position": [x, y, z] (mm, file coordinates),
    "severity": "fail" | "warning" | "info", "check": name or None}``. Kinds: the thinnest
    sampled wall (always, when measured), example self-intersecting face pairs, the diameter's
    end points when the diameter check failed, and boundary / non-manifold edges when the mesh
    has them (at most :data:`MAX_MARKERS_PER_KIND` of each kind).
    """
    m = report.get("measurements") or {}
    out: list[dict[str, Any]] = []
    th = m.get("thickness") or {}
    if th.get("min_location") is not None and th.get("min") is not None:
        failed = _check_failed(report, _MIN_WALL_CHECK)
        limit = (((report.get("evaluation") or {}).get("envelope") or {})
                 .get("min_wall_thickness"))
        label = f"thinnest sampled wall: {_fmt(float(th['min']))} mm"
        if limit is not None:
            label += f" (envelope minimum {_fmt(float(limit))} mm)"
        out.append({"kind": "thinnest_wall", "label": label,
                    "position": [float(x) for x in th["min_location"]],
                    "severity": _severity(failed, False), "check": _MIN_WALL_CHECK})

    uv, inv = weld_exact(mesh.vertices)
    faces = np.take(inv, mesh.faces)
    si = (m.get("methods") or {}).get("self_intersections") or {}
    pairs = [p for p in si.get("example_pairs") or []
             if len(p) == 2 and all(0 <= int(i) < len(faces) for i in p)]
    failed = _check_failed(report, "no_self_intersections")
    for a, b in pairs[:MAX_MARKERS_PER_KIND]:
        centre = (uv[faces[int(a)]].mean(axis=0) + uv[faces[int(b)]].mean(axis=0)) / 2.0
        out.append({"kind": "self_intersection",
                    "label": f"faces {int(a)} and {int(b)} intersect",
                    "position": [float(x) for x in centre],
                    "severity": _severity(failed, True), "check": "no_self_intersections"})

    if _check_failed(report, "max_diameter"):
        ends = ((m.get("methods") or {}).get("diameter") or {}).get("endpoints") or []
        for i, point in enumerate(ends[:2]):
            out.append({"kind": "diameter_end",
                        "label": f"diameter end {i + 1}: {_fmt(float(m.get('diameter') or 0))} "
                                 "mm apart", "position": [float(x) for x in point],
                        "severity": "fail", "check": "max_diameter"})

    if m.get("boundary_edges") or m.get("non_manifold_edges"):
        out += _edge_markers(uv, faces, report)
    return out


def _edge_markers(uv: FloatArray, faces: IntArray,
                  report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Midpoints of a few boundary (used once) and non-manifold (used > 2x) edges."""
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    if len(edges) == 0:
        return []
    keys = edges[:, 0].astype(np.int64) * (len(uv) + 1) + edges[:, 1]
    unique, first, counts = np.unique(keys, return_index=True, return_counts=True)
    out: list[dict[str, Any]] = []
    watertight_failed = _check_failed(report, "watertight")
    for kind, mask, check, what in (
        ("boundary_edge", counts == 1, "max_boundary_edges", "open edge (used by one face)"),
        ("non_manifold_edge", counts > 2, "max_non_manifold_edges",
         "non-manifold edge (used by more than two faces)"),
    ):
        picked = first[mask]
        if len(picked) == 0:
            continue
        step = max(1, len(picked) // MAX_MARKERS_PER_KIND)
        failed = _check_failed(report, check)
        if failed is None:
            failed = watertight_failed
        for j in picked[::step][:MAX_MARKERS_PER_KIND]:
            a, b = edges[int(j)]
            mid = (uv[a] + uv[b]) / 2.0
            out.append({"kind": kind, "label": f"{what}; {int(mask.sum())} in all",
                        "position": [float(x) for x in mid],
                        "severity": _severity(failed, True), "check": check})
    del unique
    return out
