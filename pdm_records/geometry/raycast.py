"""One Embree scene per mesh, shared by the wall-thickness and self-intersection checks.

Two engines, both Embree as shipped inside the ``embreex`` wheel:

``embree-ctypes`` (preferred)
    Calls the Embree 4 library bundled with embreex through ctypes. The mesh arrays are handed
    to Embree as *shared* buffers (zero copy) and rays are traced 16 at a time with
    ``rtcIntersect16`` from worker threads (ctypes releases the GIL during the call). Reason:
    embreex's ``TriangleMesh`` copies vertices and indices element by element through Python
    objects, ~0.65 s at 1 M faces before the BVH build even starts.
``embreex``
    The public embreex API, used when the bundled library cannot be found or fails the start-up
    self-test (a tiny scene with known answers), for example after an embreex upgrade that
    changes the ABI.

There is no third engine: without Embree, trimesh falls back to a pure-Python tracer that needed
97 s and up to 22 GB for 1,000 rays on a 1 M-face part (shared/notes/mesh-verification.md), so
``RayScene`` raises ``RayEngineUnavailable`` instead (fail closed).

All geometry is translated to its bounding-box centre before conversion to float32, which is
what Embree computes in; results are returned as float64 in the caller's frame.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from .errors import RayEngineUnavailable

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# --- Embree 4 constants (rtcore_common.h, rtcore_buffer.h, rtcore_geometry.h, rtcore_scene.h)
_RTC_GEOMETRY_TYPE_TRIANGLE = 0
_RTC_BUFFER_TYPE_INDEX = 0
_RTC_BUFFER_TYPE_VERTEX = 1
_RTC_FORMAT_UINT3 = 0x5003
_RTC_FORMAT_FLOAT3 = 0x9003
_RTC_SCENE_FLAG_ROBUST = 1 << 2
_RTC_BUILD_QUALITY_MEDIUM = 1
_RTC_DEVICE_PROPERTY_VERSION = 0
_INVALID_ID = 0xFFFFFFFF

# RTCRayHit16 = RTCRay16 (12 fields x 16 lanes) + RTCHit16 (Ng xyz, u, v, primID, geomID,
# instID[levels], optional instPrimID[levels]). Field offsets in units of 16 four-byte lanes:
_F_ORG = 0
_F_TNEAR = 3
_F_DIR = 4
_F_TIME = 7
_F_TFAR = 8
_F_MASK = 9
_F_ID = 10
_F_FLAGS = 11
_F_PRIMID = 17
_F_GEOMID = 18
# Stride between packets: the size of the struct depends on build options (instance levels,
# instance arrays) that we cannot query, so leave room for all of them; Embree only writes
# inside its own struct and we only read fields at fixed offsets before the variable part.
_PACKET_FLOATS = 512  # 2048 bytes, a multiple of the 64-byte alignment
_CHUNK_PACKETS = 1024
_PARALLEL_MIN_RAYS = 20_000


def engine_available() -> bool:
    """True when embreex imports: the same condition as ``trimesh.ray.has_embree`` (checked
    directly so that verifying an STL never has to import trimesh)."""
    try:
        import embreex  # noqa: F401
    except Exception:
        return False
    return True


def _aligned_empty(shape: tuple[int, ...], dtype: Any, align: int = 64) -> np.ndarray:
    dt = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dt.itemsize
    raw = np.empty(nbytes + align, dtype=np.uint8)
    off = (-raw.ctypes.data) % align
    return raw[off : off + nbytes].view(dt).reshape(shape)


class _EmbreeLib:
    """ctypes bindings to the Embree 4 library inside the embreex wheel (process singleton)."""

    _instance: _EmbreeLib | None = None
    _failed: str | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        import embreex

        pkg = os.path.dirname(os.path.abspath(embreex.__file__))
        candidates = sorted(glob.glob(os.path.join(pkg, "..", "embreex.libs", "libembree4*")))
        candidates += sorted(glob.glob(os.path.join(pkg, "libembree4*")))
        if not candidates:
            raise OSError("no libembree4 inside the embreex package")
        lib = ctypes.CDLL(candidates[0])
        vp = ctypes.c_void_p
        sig: dict[str, tuple[Any, list[Any]]] = {
            "rtcNewDevice": (vp, [ctypes.c_char_p]),
            "rtcGetDeviceProperty": (ctypes.c_ssize_t, [vp, ctypes.c_int]),
            "rtcGetDeviceError": (ctypes.c_int, [vp]),
            "rtcNewScene": (vp, [vp]),
            "rtcSetSceneFlags": (None, [vp, ctypes.c_int]),
            "rtcSetSceneBuildQuality": (None, [vp, ctypes.c_int]),
            "rtcNewGeometry": (vp, [vp, ctypes.c_int]),
            "rtcSetSharedGeometryBuffer": (
                None,
                [vp, ctypes.c_int, ctypes.c_uint, ctypes.c_int, vp, ctypes.c_size_t,
                 ctypes.c_size_t, ctypes.c_size_t],
            ),
            "rtcCommitGeometry": (None, [vp]),
            "rtcAttachGeometry": (ctypes.c_uint, [vp, vp]),
            "rtcReleaseGeometry": (None, [vp]),
            "rtcCommitScene": (None, [vp]),
            "rtcReleaseScene": (None, [vp]),
            "rtcIntersect16": (None, [vp, vp, vp, vp]),
        }
        for name, (res, args) in sig.items():
            fn = getattr(lib, name)
            fn.restype = res
            fn.argtypes = args
        self.lib = lib
        self.device = lib.rtcNewDevice(None)
        if not self.device:
            raise OSError("rtcNewDevice failed")
        self.version = int(lib.rtcGetDeviceProperty(self.device, _RTC_DEVICE_PROPERTY_VERSION))
        if self.version // 10000 != 4:
            raise OSError(f"unexpected Embree version {self.version}")

    @classmethod
    def get(cls) -> _EmbreeLib | None:
        """The bindings, or None if they cannot be loaded or fail the self-test."""
        with cls._lock:
            if cls._instance is None and cls._failed is None:
                try:
                    inst = cls()
                    cls._instance = inst
                    if not _self_test():
                        cls._instance = None
                        cls._failed = "self-test failed"
                except Exception as exc:  # any failure means: use the public embreex API
                    cls._failed = f"{type(exc).__name__}: {exc}"
            return cls._instance


def _self_test() -> bool:
    """Trace rays with known answers through a two-triangle square (z = 0, x, y in [0, 1])."""
    v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], dtype=np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)
    scene = _CtypesScene(v, f, _EmbreeLib._instance)  # type: ignore[arg-type]
    o = np.array([[0.75, 0.25, 1.0], [0.25, 0.75, -2.0], [2.0, 2.0, 1.0], [0.75, 0.25, 1.0]])
    d = np.array([[0, 0, -1.0], [0, 0, 1.0], [0, 0, -1.0], [0, 0, -1.0]])
    tn = np.array([0.0, 0.0, 0.0, 0.0])
    tf = np.array([np.inf, np.inf, np.inf, 0.5])
    t, p = scene.first_hit(o, d, tn, tf)
    return bool(
        np.allclose(t[:2], [1.0, 2.0]) and list(p) == [0, 1, -1, -1] and np.isinf(t[2:]).all()
    )


class _CtypesScene:
    def __init__(self, vertices: FloatArray, faces: IntArray, emb: _EmbreeLib) -> None:
        self._emb = emb
        lib = emb.lib
        # Shared buffers: Embree reads these arrays in place, so they must outlive the scene.
        # Vertices are stored with a 16-byte stride (x, y, z, pad), which also satisfies
        # Embree's rule that the last vertex may be read with a 16-byte load.
        self._vbuf = _aligned_empty((len(vertices) + 1, 4), np.float32)
        self._vbuf[:-1, :3] = vertices
        self._vbuf[-1] = 0.0
        self._vbuf[:, 3] = 0.0
        self._ibuf = _aligned_empty((len(faces), 3), np.uint32)
        self._ibuf[:] = faces
        self.scene = lib.rtcNewScene(emb.device)
        # Robust traversal: rays that graze edges and vertices must not slip between triangles
        # (both checks are about exactly such grazing geometry).
        lib.rtcSetSceneFlags(self.scene, _RTC_SCENE_FLAG_ROBUST)
        lib.rtcSetSceneBuildQuality(self.scene, _RTC_BUILD_QUALITY_MEDIUM)
        geom = lib.rtcNewGeometry(emb.device, _RTC_GEOMETRY_TYPE_TRIANGLE)
        lib.rtcSetSharedGeometryBuffer(geom, _RTC_BUFFER_TYPE_VERTEX, 0, _RTC_FORMAT_FLOAT3,
                                       self._vbuf.ctypes.data, 0, 16, len(vertices))
        lib.rtcSetSharedGeometryBuffer(geom, _RTC_BUFFER_TYPE_INDEX, 0, _RTC_FORMAT_UINT3,
                                       self._ibuf.ctypes.data, 0, 12, len(faces))
        lib.rtcCommitGeometry(geom)
        lib.rtcAttachGeometry(self.scene, geom)
        lib.rtcReleaseGeometry(geom)
        lib.rtcCommitScene(self.scene)
        err = lib.rtcGetDeviceError(emb.device)
        if err != 0:
            raise RayEngineUnavailable(f"Embree failed to build the scene (error {err})")
        self._valid_full = _aligned_empty((16,), np.int32)
        self._valid_full[:] = -1

    def __del__(self) -> None:
        scene = getattr(self, "scene", None)
        if scene:
            self._emb.lib.rtcReleaseScene(scene)
            self.scene = None

    def _trace_range(
        self,
        p0: int,
        p1: int,
        o: np.ndarray,
        d: np.ndarray,
        tn: np.ndarray,
        tf: np.ndarray,
        out_t: np.ndarray,
        out_p: np.ndarray,
        shift: FloatArray,
    ) -> None:
        """Trace packets ``[p0, p1)`` (16 rays each); write results for their rays.

        Origins are translated by ``-shift`` (the scene's frame) while they are packed."""
        n = len(o)
        fn = self._emb.lib.rtcIntersect16
        scene = self.scene
        ch = min(_CHUNK_PACKETS, p1 - p0)
        buf = _aligned_empty((ch, _PACKET_FLOATS), np.float32)
        ibuf = buf.view(np.uint32)
        valid_last = _aligned_empty((16,), np.int32)
        for c0 in range(p0, p1, ch):
            c1 = min(p1, c0 + ch)
            m = c1 - c0
            r0, r1 = c0 * 16, min(n, c1 * 16)
            k = r1 - r0
            lanes = m * 16

            def put(field: int, values: np.ndarray, fill: float, m: int = m, k: int = k,
                    lanes: int = lanes) -> None:
                col = np.full(lanes, fill, dtype=np.float32)
                col[:k] = values
                buf[:m, field * 16 : (field + 1) * 16] = col.reshape(m, 16)

            for j in range(3):
                put(_F_ORG + j, o[r0:r1, j] - shift[j], 0.0)
                put(_F_DIR + j, d[r0:r1, j], 1.0)
            put(_F_TNEAR, tn[r0:r1], 0.0)
            put(_F_TFAR, tf[r0:r1], 0.0)
            buf[:m, _F_TIME * 16 : (_F_TIME + 1) * 16] = 0.0
            ibuf[:m, _F_MASK * 16 : (_F_MASK + 1) * 16] = _INVALID_ID  # all mask bits set
            ibuf[:m, _F_ID * 16 : (_F_FLAGS + 1) * 16] = 0
            ibuf[:m, _F_PRIMID * 16 : (_F_GEOMID + 1) * 16] = _INVALID_ID
            base = buf.ctypes.data
            valid = self._valid_full.ctypes.data
            stride = _PACKET_FLOATS * 4
            full = m if k == lanes else m - 1
            for i in range(full):
                fn(valid, scene, base + i * stride, None)
            if full < m:
                rem = k - full * 16
                valid_last[:] = 0
                valid_last[:rem] = -1
                fn(valid_last.ctypes.data, scene, base + full * stride, None)
            t = buf[:m, _F_TFAR * 16 : (_F_TFAR + 1) * 16].reshape(-1)[:k]
            g = ibuf[:m, _F_GEOMID * 16 : (_F_GEOMID + 1) * 16].reshape(-1)[:k]
            p = ibuf[:m, _F_PRIMID * 16 : (_F_PRIMID + 1) * 16].reshape(-1)[:k]
            hit = g != _INVALID_ID
            out_t[r0:r1] = np.where(hit, t, np.inf)
            out_p[r0:r1] = np.where(hit, p.astype(np.int64), -1)

    def first_hit(
        self,
        o: np.ndarray,
        d: np.ndarray,
        tn: np.ndarray,
        tf: np.ndarray,
        center: FloatArray | None = None,
    ) -> tuple[FloatArray, IntArray]:
        shift = np.zeros(3) if center is None else np.asarray(center, dtype=np.float64)
        n = len(o)
        out_t = np.empty(n, dtype=np.float64)
        out_p = np.empty(n, dtype=np.int64)
        if n == 0:
            return out_t, out_p
        npk = (n + 15) // 16
        workers = min(os.cpu_count() or 1, 4)
        if n < _PARALLEL_MIN_RAYS or workers == 1:
            self._trace_range(0, npk, o, d, tn, tf, out_t, out_p, shift)
            return out_t, out_p
        bounds = np.linspace(0, npk, workers + 1).astype(int)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = [
                pool.submit(self._trace_range, int(a), int(b), o, d, tn, tf, out_t, out_p, shift)
                for a, b in itertools.pairwise(bounds)
                if b > a
            ]
            for fut in futures:
                fut.result()
        return out_t, out_p


class _EmbreexScene:
    """Fallback through the public embreex API (slower to build, same answers)."""

    def __init__(self, vertices: FloatArray, faces: IntArray) -> None:
        from embreex import rtcore_scene
        from embreex.mesh_construction import TriangleMesh

        self.scene = rtcore_scene.EmbreeScene()
        self._mesh = TriangleMesh(
            scene=self.scene,
            vertices=np.ascontiguousarray(vertices, dtype=np.float32),
            indices=np.ascontiguousarray(faces, dtype=np.int32),
        )

    def first_hit(
        self, o: np.ndarray, d: np.ndarray, tn: np.ndarray, tf: np.ndarray
    ) -> tuple[FloatArray, IntArray]:
        n = len(o)
        if n == 0:
            return np.empty(0), np.empty(0, np.int64)
        # embreex has no tnear: start the ray at tnear instead and shift the distance back.
        start = (o + d * tn[:, None]).astype(np.float32)
        dist = np.maximum(tf - tn, 0.0)
        dist = np.where(np.isfinite(dist), dist, np.finfo(np.float32).max).astype(np.float32)
        res = self.scene.run(start, d.astype(np.float32), dists=dist, output=1)
        prim = np.asarray(res["primID"], dtype=np.int64)
        hit = prim >= 0
        t = np.where(hit, np.asarray(res["tfar"], dtype=np.float64) + tn, np.inf)
        return t, np.where(hit, prim, -1)


class RayScene:
    """A committed Embree scene over a welded mesh.

    ``first_hit(origins, directions, tnear, tfar)`` returns, for each ray, the distance ``t``
    (in units of the direction vector's length) to the nearest face hit with
    ``tnear <= t <= tfar`` (``inf`` for a miss) and that face's index (``-1`` for a miss).
    Raises ``RayEngineUnavailable`` when embreex is missing.
    """

    def __init__(self, vertices: FloatArray, faces: IntArray) -> None:
        if not engine_available():
            raise RayEngineUnavailable(
                "embreex is not installed: wall thickness and self-intersection checks refuse to "
                "run without Embree (trimesh's fallback tracer needs minutes and gigabytes)"
            )
        vertices = np.asarray(vertices, dtype=np.float64)
        lo = np.array([vertices[:, i].min() for i in range(3)])  # 1-D reductions: ~15x faster
        hi = np.array([vertices[:, i].max() for i in range(3)])
        self.center = (lo + hi) / 2.0
        local = vertices - self.center
        emb = _EmbreeLib.get()
        self._impl: _CtypesScene | _EmbreexScene
        if emb is not None:
            self._impl = _CtypesScene(local, faces, emb)
            self.engine = "embree-ctypes"
            self.embree_version: int | None = emb.version
        else:
            self._impl = _EmbreexScene(local, faces)
            self.engine = "embreex"
            self.embree_version = None

    def first_hit(
        self,
        origins: FloatArray,
        directions: FloatArray,
        tnear: FloatArray,
        tfar: FloatArray,
    ) -> tuple[FloatArray, IntArray]:
        """See the class docstring. Deterministic: every ray is traced independently."""
        o = np.asarray(origins, dtype=np.float64)
        if isinstance(self._impl, _CtypesScene):
            # shifted chunk by chunk while packing the rays (no full-size temporary)
            return self._impl.first_hit(
                o,
                np.asarray(directions, dtype=np.float64),
                np.asarray(tnear, dtype=np.float64),
                np.asarray(tfar, dtype=np.float64),
                self.center,
            )
        return self._impl.first_hit(
            o - self.center,
            np.asarray(directions, dtype=np.float64),
            np.asarray(tnear, dtype=np.float64),
            np.asarray(tfar, dtype=np.float64),
        )


def embree_status() -> dict[str, Any]:
    """Which engine would be used and why (for the report's software section)."""
    emb = _EmbreeLib.get() if engine_available() else None
    return {
        "engine": "embree-ctypes" if emb is not None else "embreex",
        "embree_version": emb.version if emb is not None else None,
        "fallback_reason": _EmbreeLib._failed,
    }
