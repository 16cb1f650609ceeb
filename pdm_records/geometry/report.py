"""The verification pipeline: bytes -> mesh -> measurements -> warnings -> envelope evaluation.

Why these checks: FDA's guidance on additively manufactured devices (§V.B, design and
manufacturing) expects patient-matched designs to be verified against a pre-established design
envelope, with software checks that stop the operator from exceeding it; IMDRF N58 asks the same
for patient-matched medical devices (DOMAIN.md §4). Every measurement therefore carries its
method and parameters, and every report carries the software versions and the weld rule, so the
number can be reproduced and the method challenged.

Determinism: the same bytes and parameters give an identical report (no timestamps, seeded
sampling, order-independent reductions, per-ray independent tracing).
"""

from __future__ import annotations

import hashlib
import math
import platform
import threading
import time
from importlib import metadata
from typing import Any

import numpy as np

from .loaders import DEFAULT_LIMITS, LoadLimits, load_mesh_bytes
from .mesh import Mesh
from .raycast import RayScene, embree_status
from .selfintersect import coplanar_candidates, find_self_intersections
from .shape import (
    bounds,
    diameter,
    face_geometry_full,
    oriented_extents,
    overhang_area,
    shared_extremes,
    signed_volume,
)
from .thickness import START_OFFSET, ray_thickness, sample_surface
from .topology import WELD_RULE, analyse, duplicate_faces, weld_exact
from .units import MM_PER_UNIT, UNIT_NAMES

#: Bumped whenever a definition or method changes in a way that can change a number.
ALGORITHM_VERSION = "pdm-geometry/1"
REPORT_SCHEMA = "pdm-records/check-mesh/1"

DEFAULT_THICKNESS_SAMPLES = 10_000
_PARALLEL_SHAPE = True
DEFAULT_OVERHANG_ANGLE_DEG = 45.0


def measure(
    mesh: Mesh,
    *,
    thickness_samples: int = DEFAULT_THICKNESS_SAMPLES,
    seed: int = 0,
    overhang_angle_deg: float = DEFAULT_OVERHANG_ANGLE_DEG,
    check_self_intersections: bool = True,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Measure ``mesh`` (in mm); return the JSON-ready ``measurements`` object.

    Undefined values are ``None`` (for example ``volume`` of an open mesh, ``winding_consistent``
    of a non-manifold mesh). Raises ``RayEngineUnavailable`` when Embree is missing and
    thickness or self-intersection checks are requested. If ``timings`` is given, wall-clock
    seconds per phase are added to it (kept out of the report, which must be deterministic).
    """
    clock = _PhaseClock(timings)
    uv, inv = weld_exact(mesh.vertices)
    faces = np.take(inv, mesh.faces)
    del inv
    collapsed = (faces[:, 0] == faces[:, 1]) | (faces[:, 1] == faces[:, 2]) | (
        faces[:, 0] == faces[:, 2]
    )
    # Start the BVH build early: it runs in Embree's own threads (ctypes releases the GIL), so
    # it overlaps with the topology work below on a multi-core machine.
    scene_box: dict[str, Any] = {}
    need_rays = thickness_samples > 0 or check_self_intersections

    def build_scene() -> None:
        try:
            t0 = time.perf_counter()
            scene_box["scene"] = RayScene(uv, faces)
            scene_box["seconds"] = time.perf_counter() - t0
        except BaseException as exc:  # re-raised in the caller's thread
            scene_box["error"] = exc

    builder = threading.Thread(target=build_scene, daemon=True) if need_rays else None
    if builder is not None:
        builder.start()
    clock.lap("weld")

    tri = np.take(uv, faces, axis=0)
    cross, area, normals, degenerate = face_geometry_full(tri)
    degenerate |= collapsed
    clock.lap("face_geometry")
    used = np.zeros(len(uv), dtype=bool)
    used[faces.ravel()] = True
    pts = uv[used]
    # Size and shape (duplicates, extremes, oriented box, diameter) and the coplanar part of
    # the self-intersection search need no topology: compute them in a worker thread while
    # this one builds the edge table (numpy releases the GIL in its array loops, so the two
    # overlap on a multi-core machine).
    shape_box: dict[str, Any] = {}

    def shape_work() -> None:
        try:
            t0 = time.perf_counter()
            shape_box["dups"] = duplicate_faces(faces, len(uv))
            ext = shared_extremes(pts) if len(pts) > 4000 else None
            shape_box["obb"] = oriented_extents(pts, seed, ext)
            shape_box["diam"] = diameter(pts, ext)
            if check_self_intersections:
                # the coplanar broad phase needs no scene and no edge table: do it here too
                plo, phi = bounds(pts)
                span = float((phi - plo).max())
                shape_box["coplanar"] = coplanar_candidates(tri, normals, ~degenerate, span,
                                                            faces)
            shape_box["seconds"] = time.perf_counter() - t0
        except BaseException as exc:  # re-raised in the caller's thread
            shape_box["error"] = exc

    shaper = threading.Thread(target=shape_work, daemon=True)
    if _PARALLEL_SHAPE:
        shaper.start()
    topo, et = analyse(faces, len(uv), ~collapsed)
    clock.lap("topology")
    lo, hi = bounds(pts)
    scale = float((hi - lo).max())
    center = (lo + hi) / 2.0
    # Vacuously closed meshes (every face collapsed) are not watertight.
    watertight = bool((~collapsed).any()) and topo.boundary_edges == 0 and (
        topo.non_manifold_edges == 0
    )
    vol_signed = signed_volume(tri, center, cross)
    del cross
    closed_oriented = watertight and topo.winding_consistent is True
    total_area = float(area.sum())

    m: dict[str, Any] = {
        "faces": len(faces),
        "vertices": topo.n_vertices,
        "file_vertices": len(mesh.vertices),
        "edges": topo.n_edges,
        "watertight": watertight,
        "boundary_edges": topo.boundary_edges,
        "non_manifold_edges": topo.non_manifold_edges,
        "winding_consistent": topo.winding_consistent,
        "bodies": topo.bodies,
        "euler_number": topo.euler_number,
        "degenerate_faces": int(degenerate.sum()),
        "duplicate_faces": None,
        "self_intersections": None,
        "volume": abs(vol_signed) if closed_oriented else None,
        "signed_volume": vol_signed if closed_oriented else None,
        "area": total_area,
        "bounds": {"min": lo.tolist(), "max": hi.tolist()},
        "extents": sorted((float(v) for v in (hi - lo)), reverse=True),
    }

    m["overhang_area"] = overhang_area(normals, area, overhang_angle_deg)
    clock.lap("volume_area_overhang")
    if _PARALLEL_SHAPE:
        shaper.join()
    else:
        shape_work()
    if "error" in shape_box:
        raise shape_box["error"]
    m["duplicate_faces"] = shape_box["dups"]
    obb = shape_box["obb"]
    diam = shape_box["diam"]
    m["oriented_extents"] = obb["extents"]
    m["diameter"] = diam["value"]
    m["diameter_upper_bound"] = diam["upper_bound"]
    m["diameter_exact"] = diam["exact"]
    clock.lap("wait_for_shape_thread")
    if timings is not None:
        timings["shape_thread(parallel)"] = shape_box["seconds"]

    methods: dict[str, Any] = {
        "weld": WELD_RULE,
        "topology": {
            "watertight": "every edge used by exactly two faces",
            "boundary_edges": "edges used by exactly one face",
            "non_manifold_edges": "edges used by more than two faces",
            "winding_consistent": "each directed edge appears once; null when non-manifold "
            "edges exist (not meaningful there)",
            "bodies": "connected components of faces sharing an edge (scipy csgraph)",
            "euler_number": "V - E + F over non-collapsed faces and the vertices they use",
            "collapsed_faces_excluded": int(collapsed.sum()),
        },
        "degenerate_faces": "zero area to float precision: |e0 x e2| <= 1e-10 |e0| |e2| at the "
        "first corner (sine of the corner angle ~ 0), a zero-length edge, or a repeated vertex "
        "after welding",
        "duplicate_faces": "faces whose vertex set equals that of an earlier face",
        "volume": "signed sum of tetrahedra (a, b, c, box centre) / 6; null unless watertight "
        "and consistently wound; volume is its absolute value",
        "area": "sum of triangle areas",
        "extents": "axis-aligned bounding box of the used vertices, sorted largest first",
        "oriented_extents": {
            "method": "smallest box flush with a convex-hull facet (min-area rectangle per "
            f"facet normal) of at most {obb['points_used']} points (extremes along fixed "
            "directions + seeded sample), then measured over all vertices in that "
            "orientation (never larger than the axis-aligned box); sorted largest first",
            "seed": seed,
        },
        "diameter": {
            "method": "largest vertex-pair distance; lower bound from extreme points and "
            "double-normal iteration, upper bound from direction widths and the enclosing "
            "ball, exact brute force over the remaining candidates when few",
            "exact": diam["exact"],
            "upper_bound": diam["upper_bound"],
            "endpoints": diam["endpoints"],
        },
        "overhang_area": {
            "method": "area of faces whose unit normal is within angle_deg of -Z",
            "angle_deg": overhang_angle_deg,
        },
    }

    scene: RayScene | None = None
    if builder is not None:
        builder.join()
        if "error" in scene_box:
            raise scene_box["error"]
        scene = scene_box["scene"]
        if timings is not None:
            timings["scene_build(parallel)"] = scene_box["seconds"]
    clock.lap("wait_for_scene_build")

    if thickness_samples > 0 and scene is not None:
        sample = sample_surface(tri, normals, np.where(degenerate, 0.0, area),
                                thickness_samples, seed)
        inward = 1.0 if vol_signed < 0 else -1.0
        _, th = ray_thickness(scene, sample, scale, inward_sign=inward)
        th["method"] = "ray"
        th["seed"] = seed
        th["direction"] = "-face normal" if inward < 0 else "+face normal (inside-out mesh)"
        th["start_offset"] = START_OFFSET * scale
        m["thickness"] = th
        clock.lap("thickness")
    else:
        m["thickness"] = {"min": None, "p1": None, "p5": None, "median": None, "max": None,
                          "min_location": None, "min_face": None, "method": "ray",
                          "samples": 0, "misses": 0, "seed": seed}

    if check_self_intersections and scene is not None:
        si = find_self_intersections(scene, uv, faces, et, ~degenerate, normals, tri=tri,
                                     coplanar=shape_box.get("coplanar"))
        m["self_intersections"] = si.pairs
        methods["self_intersections"] = si.method()
        methods["self_intersections"]["example_pairs"] = si.example_pairs
        clock.lap("self_intersections")
    if scene is not None:
        methods["ray_engine"] = {"engine": scene.engine, "embree_version": scene.embree_version}
    m["methods"] = methods
    return m


class _PhaseClock:
    """Accumulates wall-clock time per phase into an optional dict (for benchmarks)."""

    def __init__(self, sink: dict[str, float] | None) -> None:
        self.sink = sink
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        if self.sink is not None:
            self.sink[name] = self.sink.get(name, 0.0) + now - self.last
        self.last = now


def units_warnings(
    measurements: dict[str, Any], unit: str, expected_max_extent_mm: float | None
) -> list[dict[str, str]]:
    """Warn when the part's size is ~1000x, ~25.4x or ~10x off the expected size.

    A wrong unit is the most common silent error with STL (no unit field). The expected size
    comes from the device type (for example the envelope's maximum extent).
    """
    if not expected_max_extent_mm or expected_max_extent_mm <= 0:
        return []
    size = float(measurements["extents"][0])
    if size <= 0:
        return []
    ratio = size / expected_max_extent_mm
    if 1 / 3 <= ratio <= 3:
        return []
    # Which mistake explains the ratio best: a file drawn in `true_u` but declared in `unit`
    # is scaled by mm_per(unit) / mm_per(true_u).
    best: tuple[float, str] | None = None
    for true_u, mm in MM_PER_UNIT.items():
        if true_u == unit:
            continue
        err = abs(math.log(ratio / (MM_PER_UNIT[unit] / mm)))
        if best is None or err < best[0]:
            best = (err, true_u)
    msg = (
        f"the part's largest extent is {size:.4g} mm, {ratio:.3g}x the expected "
        f"{expected_max_extent_mm:.4g} mm"
    )
    if best is not None and best[0] < math.log(2.0):
        msg += (
            f"; the file looks like it is in {UNIT_NAMES[best[1]]} but was declared in "
            f"{UNIT_NAMES[unit]}"
        )
    return [{"code": "units_suspect", "message": msg}]


def quality_warnings(m: dict[str, Any]) -> list[dict[str, str]]:
    """Plain-language warnings for the defects the measurements reveal."""
    out: list[dict[str, str]] = []
    if not m["watertight"]:
        out.append({"code": "not_watertight", "message": (
            f"the mesh is not watertight: {m['boundary_edges']} boundary edges, "
            f"{m['non_manifold_edges']} non-manifold edges; volume and thickness are unreliable")})
    if m["winding_consistent"] is False:
        out.append({"code": "winding_inconsistent",
                    "message": "face orientation is inconsistent (some faces are flipped)"})
    if m["signed_volume"] is not None and m["signed_volume"] < 0:
        out.append({"code": "inside_out", "message": "all faces point inward (negative volume)"})
    if m["self_intersections"]:
        out.append({"code": "self_intersections",
                    "message": f"{m['self_intersections']} pairs of faces intersect"})
    if m["degenerate_faces"]:
        out.append({"code": "degenerate_faces",
                    "message": f"{m['degenerate_faces']} faces have zero area"})
    if m["duplicate_faces"]:
        out.append({"code": "duplicate_faces",
                    "message": f"{m['duplicate_faces']} faces duplicate another face"})
    th = m.get("thickness") or {}
    if th.get("samples") and th.get("misses"):
        out.append({"code": "thickness_misses", "message": (
            f"{th['misses']} of {th['samples']} thickness rays left the part")})
    si = m.get("methods", {}).get("self_intersections")
    if si and not si.get("complete", True):
        out.append({"code": "self_intersection_search_incomplete",
                    "message": "the self-intersection search hit its work limit"})
    return out


def software_versions() -> dict[str, Any]:
    """Versions of everything that can change a number in the report."""

    def ver(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    status = embree_status()
    return {
        "algorithm": ALGORITHM_VERSION,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": ver("scipy"),
        "trimesh": ver("trimesh"),
        "embreex": ver("embreex"),
        "ray_engine": status["engine"],
        "embree": status["embree_version"],
    }


def check_mesh_bytes(
    data: bytes,
    file_type: str,
    units: str = "mm",
    envelope: Any = None,
    *,
    expected_max_extent_mm: float | None = None,
    thickness_samples: int = DEFAULT_THICKNESS_SAMPLES,
    seed: int = 0,
    overhang_angle_deg: float | None = None,
    limits: LoadLimits = DEFAULT_LIMITS,
    requested_parameters: dict[str, float] | None = None,
    timings: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Full verification report for uploaded bytes (see check-mesh.schema.json).

    ``envelope`` is an ``EnvelopeLimits`` or a dict accepted by ``EnvelopeLimits.from_dict``;
    when given, the report has an ``evaluation`` object. When no expected size is given, the
    envelope's largest maximum extent (or maximum diameter) is used for the units check.
    Raises ``MeshError`` when the bytes are not a verifiable mesh, ``EnvelopeError`` for an
    invalid envelope and ``RayEngineUnavailable`` without Embree.
    """
    from ..envelopes import EnvelopeLimits, evaluate

    limits_obj: EnvelopeLimits | None = None
    if envelope is not None:
        limits_obj = (
            envelope if isinstance(envelope, EnvelopeLimits) else EnvelopeLimits.from_dict(envelope)
        )
    digest: dict[str, str] = {}
    hasher = threading.Thread(
        target=lambda: digest.__setitem__("sha256", hashlib.sha256(data).hexdigest()),
        daemon=True,
    )
    hasher.start()  # hashlib releases the GIL on large buffers: free on a multi-core machine
    t0 = time.perf_counter()
    mesh = load_mesh_bytes(data, file_type, units, limits)
    if timings is not None:
        timings["load"] = timings.get("load", 0.0) + time.perf_counter() - t0
    angle = overhang_angle_deg
    if angle is None:
        angle = DEFAULT_OVERHANG_ANGLE_DEG
        if limits_obj is not None and limits_obj.overhang_angle_deg is not None:
            angle = limits_obj.overhang_angle_deg
    measurements = measure(
        mesh, thickness_samples=thickness_samples, seed=seed, overhang_angle_deg=angle,
        timings=timings,
    )
    expected = expected_max_extent_mm
    if expected is None and limits_obj is not None:
        expected = limits_obj.expected_size_mm()
    warnings_out = [{"code": "load_note", "message": n} for n in mesh.load_notes]
    warnings_out += units_warnings(measurements, mesh.source_unit, expected)
    warnings_out += quality_warnings(measurements)
    hasher.join()
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "input": {
            "file_type": mesh.file_type,
            "units": mesh.source_unit,
            "bytes": len(data),
            "sha256": digest["sha256"],
            "parameters": {
                "thickness_samples": thickness_samples,
                "seed": seed,
                "overhang_angle_deg": angle,
                "expected_max_extent_mm": expected,
            },
        },
        "measurements": measurements,
        "warnings": warnings_out,
        "software": software_versions(),
    }
    if limits_obj is not None:
        report["evaluation"] = evaluate(measurements, limits_obj, requested_parameters)
    return report
