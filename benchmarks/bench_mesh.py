"""Benchmark: mesh verification of a ~1,000,000-triangle thin-walled part.

    .venv/bin/python benchmarks/bench_mesh.py [--reps 3] [--rings 353]

Steps (medians over --reps repetitions, each in this process unless stated):
(a) baseline: the straightforward trimesh sequence (load with processing, is_watertight,
    is_winding_consistent, volume, bodies via face-adjacency components, boundary/non-manifold
    edges via np.unique, degenerate/duplicate faces, 10,000-ray thickness with embreex);
(b) this product's full verification from the file's bytes (``check_mesh_bytes``: every field,
    including self-intersections, with the same 10,000 seeded rays), asserted to agree with (a);
(c) the self-intersection check alone (Embree scene build + search, on the welded mesh);
(d) whole process: ``python -m pdm_records.geometry.cli PATH --json`` vs a process running (a);
peak RSS of (b) measured in a separate process (``resource.getrusage``).

The last line printed is exactly:
``baseline_s=<a> pdm_s=<b> speedup=<a/b> selfint_s=<c> cli_speedup=<d> peak_rss_mb=<n>``
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm_records.geometry import check_mesh_bytes  # noqa: E402
from pdm_records.geometry.loaders import load_mesh_bytes  # noqa: E402
from pdm_records.geometry.raycast import RayScene  # noqa: E402
from pdm_records.geometry.selfintersect import find_self_intersections  # noqa: E402
from pdm_records.geometry.shape import degenerate_mask, face_geometry  # noqa: E402
from pdm_records.geometry.thickness import sample_surface  # noqa: E402
from pdm_records.geometry.topology import analyse, weld_exact  # noqa: E402

SAMPLES = 10_000
SEED = 0


def uv_sphere(radius: float, rings: int, sectors: int) -> tuple[np.ndarray, np.ndarray]:
    """Closed UV sphere with single poles: 2 * sectors * (rings - 1) triangles."""
    th = np.pi * np.arange(1, rings) / rings
    ph = 2 * np.pi * np.arange(sectors) / sectors
    st, ct = np.sin(th)[:, None], np.cos(th)[:, None]
    ring_v = np.stack([radius * st * np.cos(ph), radius * st * np.sin(ph),
                       np.broadcast_to(radius * ct, (rings - 1, sectors))], axis=-1)
    v = np.concatenate([[[0.0, 0.0, radius]], ring_v.reshape(-1, 3), [[0.0, 0.0, -radius]]])
    south = len(v) - 1
    j = np.arange(sectors)
    j2 = (j + 1) % sectors
    faces = [np.stack([np.zeros(sectors, int), 1 + j, 1 + j2], axis=1)]
    i = np.arange(rings - 2)[:, None]
    a = 1 + i * sectors
    b = a + sectors
    faces.append(np.stack([a + j, b + j, b + j2], axis=-1).reshape(-1, 3))
    faces.append(np.stack([a + j, b + j2, a + j2], axis=-1).reshape(-1, 3))
    last = 1 + (rings - 2) * sectors
    faces.append(np.stack([np.full(sectors, south), last + j2, last + j], axis=1))
    return v, np.concatenate(faces)


def write_part(path: Path, rings: int) -> int:
    """Hollow sphere, outer radius 50 mm, wall 1.0 mm (inner surface wound inward)."""
    vo, fo = uv_sphere(50.0, rings, rings)
    vi, fi = uv_sphere(49.0, rings, rings)
    v = np.concatenate([vo, vi])
    f = np.concatenate([fo, fi[:, ::-1] + len(vo)])
    tri = v[f].astype(np.float32)
    rec = np.zeros(len(f), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["v"] = tri
    path.write_bytes(b"pdm-records benchmark shell".ljust(80, b" ")
                     + np.uint32(len(f)).tobytes() + rec.tobytes())
    return len(f)


def seeded_rays(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The product's 10,000 seeded sample points and normals (same as in (b))."""
    mesh = load_mesh_bytes(data, "stl")
    uv, inv = weld_exact(mesh.vertices)
    faces = inv[mesh.faces]
    tri = uv[faces]
    _, area, normals = face_geometry(tri)
    deg = degenerate_mask(tri, area)
    s = sample_surface(tri, normals, np.where(deg, 0.0, area), SAMPLES, SEED)
    return s.points, s.normals


def baseline(path: str, points: np.ndarray, normals: np.ndarray,
             steps: dict[str, float] | None = None) -> dict[str, Any]:
    """(a) The straightforward trimesh sequence."""
    import trimesh

    last = [time.perf_counter()]

    def lap(name: str) -> None:
        now = time.perf_counter()
        if steps is not None:
            steps[name] = steps.get(name, 0.0) + now - last[0]
        last[0] = now

    mesh = trimesh.load_mesh(path, file_type="stl")  # process=True: merges vertices
    lap("load_mesh(processed)")
    out: dict[str, Any] = {"faces": len(mesh.faces)}
    out["watertight"] = bool(mesh.is_watertight)
    lap("is_watertight")
    out["winding_consistent"] = bool(mesh.is_winding_consistent)
    lap("is_winding_consistent")
    out["volume"] = float(mesh.volume)
    lap("volume")
    comps = trimesh.graph.connected_components(
        mesh.face_adjacency, nodes=np.arange(len(mesh.faces)), min_len=1
    )
    out["bodies"] = len(comps)
    lap("bodies")
    _, counts = np.unique(mesh.edges_sorted, axis=0, return_counts=True)
    out["boundary_edges"] = int((counts == 1).sum())
    out["non_manifold_edges"] = int((counts > 2).sum())
    lap("edge_counts(np.unique)")
    out["degenerate_faces"] = int((~mesh.nondegenerate_faces()).sum())
    lap("degenerate")
    out["duplicate_faces"] = int(len(mesh.faces) - mesh.unique_faces().sum())
    lap("duplicate")
    th = trimesh.proximity.thickness(mesh, points, normals=normals, method="ray")
    lap("thickness(10k rays incl. embreex build)")
    fin = th[np.isfinite(th)]
    out["thickness_min"] = float(fin.min())
    out["thickness_median"] = float(np.percentile(fin, 50, method="lower"))
    return out


def pdm(path: str, steps: dict[str, float] | None = None) -> dict[str, Any]:
    """(b) The product's full verification, from the file's bytes."""
    t0 = time.perf_counter()
    data = Path(path).read_bytes()
    if steps is not None:
        steps["read_file"] = steps.get("read_file", 0.0) + time.perf_counter() - t0
    return check_mesh_bytes(data, "stl", "mm", thickness_samples=SAMPLES, seed=SEED,
                            timings=steps)


def agree(a: dict[str, Any], b: dict[str, Any]) -> None:
    m = b["measurements"]
    for key in ("faces", "watertight", "winding_consistent", "bodies", "boundary_edges",
                "non_manifold_edges", "degenerate_faces", "duplicate_faces"):
        assert a[key] == m[key], (key, a[key], m[key])
    assert abs(a["volume"] - m["volume"]) <= 1e-6 * a["volume"], (a["volume"], m["volume"])
    th = m["thickness"]
    assert abs(a["thickness_min"] - th["min"]) <= 1e-4 * th["min"], (a["thickness_min"], th)
    assert abs(a["thickness_median"] - th["median"]) <= 1e-4 * th["median"]
    assert m["self_intersections"] == 0


def timed(fn: Callable[[], Any], reps: int) -> tuple[float, list[float], Any, float]:
    """Median wall time, all wall times, last result, median CPU time (user + sys, all
    threads of this process): CPU time shows the work done even when other processes share
    the machine's cores."""
    times, cpus, result = [], [], None
    for _ in range(reps):
        c0 = os.times()
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        c1 = os.times()
        cpus.append(c1.user - c0.user + c1.system - c0.system)
    return statistics.median(times), times, result, statistics.median(cpus)


def selfint_only(data: bytes) -> tuple[float, float, int]:
    """(c) Scene build + self-intersection search on the welded mesh; returns both times."""
    mesh = load_mesh_bytes(data, "stl")
    uv, inv = weld_exact(mesh.vertices)
    faces = inv[mesh.faces]
    tri = uv[faces]
    _, area, normals = face_geometry(tri)
    usable = ~degenerate_mask(tri, area)
    _, et = analyse(faces, len(uv), np.ones(len(faces), dtype=bool))
    t0 = time.perf_counter()
    scene = RayScene(uv, faces)
    t1 = time.perf_counter()
    res = find_self_intersections(scene, uv, faces, et, usable, normals)
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, res.pairs


BASELINE_PROC = textwrap.dedent(
    """
    import sys, numpy as np
    sys.path.insert(0, {root!r})
    from benchmarks.bench_mesh import baseline
    d = np.load({rays!r})
    baseline({path!r}, d["points"], d["normals"])
    """
)

PEAK_PROC = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, {root!r})
    from benchmarks.bench_mesh import pdm
    pdm({path!r})
    hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")]
    hwm_mb = float(hwm[0].split()[1]) / 1024.0 if hwm else float("nan")
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, hwm_mb)
    """
)


def run_proc(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def machine_load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rings", type=int, default=500, help="500 -> 998,000 triangles")
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shell.stl"
        n = write_part(path, args.rings)
        data = path.read_bytes()
        print(f"part: hollow sphere R50/R49 mm (1.0 mm wall), {n} triangles, "
              f"{len(data) / 1e6:.1f} MB binary STL; {os.cpu_count()} CPUs; "
              f"load average {machine_load()}")
        points, normals = seeded_rays(data)
        rays = Path(tmp) / "rays.npz"
        np.savez(rays, points=points, normals=normals)

        pdm(str(path))  # warm-up: imports, Embree device, page cache
        b_steps: dict[str, float] = {}
        a_steps: dict[str, float] = {}
        b_med, b_all, b_res, b_cpu = timed(lambda: pdm(str(path), b_steps), args.reps)
        a_med, a_all, a_res, a_cpu = timed(
            lambda: baseline(str(path), points, normals, a_steps), args.reps
        )
        agree(a_res, b_res)
        print(f"(a) baseline trimesh sequence: median {a_med:.3f} s (CPU {a_cpu:.3f} s)  runs "
              f"{[round(t, 3) for t in a_all]}")
        print("    steps (mean s): " + ", ".join(
            f"{k} {v / args.reps:.3f}" for k, v in a_steps.items()))
        print(f"(b) pdm full verification:     median {b_med:.3f} s (CPU {b_cpu:.3f} s)  runs "
              f"{[round(t, 3) for t in b_all]}  (agrees with (a))")
        print("    steps (mean s; the scene build and the shape thread run concurrently): "
              + ", ".join(f"{k} {v / args.reps:.3f}" for k, v in b_steps.items()))

        c_runs = [selfint_only(data) for _ in range(args.reps)]
        c_build = statistics.median(r[0] for r in c_runs)
        c_search = statistics.median(r[1] for r in c_runs)
        c_tot = statistics.median(r[0] + r[1] for r in c_runs)
        print(f"(c) self-intersections: median {c_tot:.3f} s (scene build {c_build:.3f} s + "
              f"search {c_search:.3f} s), pairs found {c_runs[0][2]}")

        cli = [py, "-m", "pdm_records.geometry.cli", str(path), "--json"]
        base_script = BASELINE_PROC.format(root=str(ROOT), rays=str(rays), path=str(path))
        d_pdm = statistics.median(run_proc(cli) for _ in range(args.reps))
        d_base = statistics.median(run_proc([py, "-c", base_script]) for _ in range(args.reps))
        print(f"(d) whole process: cli {d_pdm:.3f} s, baseline process {d_base:.3f} s")

        peak_script = PEAK_PROC.format(root=str(ROOT), path=str(path))
        # Linux carries the parent's resident size at fork time into the child's ru_maxrss
        # across exec (signal->maxrss), and this process is large by now; a shell in between
        # forks the measuring process from a small parent, so ru_maxrss is its own peak.
        # VmHWM (per address space) is printed as a cross-check.
        out = subprocess.run(["/bin/sh", "-c", '"$0" -c "$1"; exit $?', py, peak_script],
                             check=True, capture_output=True, text=True, cwd=ROOT).stdout
        peak_s, hwm_s = out.strip().splitlines()[-1].split()
        peak = float(peak_s)
        print(f"peak RSS of (b) in a fresh process: ru_maxrss {peak:.0f} MB, VmHWM "
              f"{float(hwm_s):.0f} MB; load average now {machine_load()}")
        print(f"baseline_s={a_med:.3f} pdm_s={b_med:.3f} speedup={a_med / b_med:.2f} "
              f"selfint_s={c_tot:.3f} cli_speedup={d_base / d_pdm:.2f} peak_rss_mb={peak:.0f}")


if __name__ == "__main__":
    main()
