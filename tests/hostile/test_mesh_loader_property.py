"""Property: the mesh loader turns any bytes into a valid mesh or a ``MeshError`` — never
another exception, never an empty or non-finite mesh (pdm_records/geometry/loaders.py contract).

Inputs are capped at a few KiB (the loader checks sizes before parsing, so a larger input adds
nothing but time) and hypothesis is derandomised with a fixed example count, so CI is stable.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdm_records.geometry.errors import MeshError
from pdm_records.geometry.loaders import SUPPORTED_FORMATS, LoadLimits, load_mesh_bytes
from tests.hostile.hostile_files import _zip
from tests.meshes import ascii_stl, binary_stl

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
LIMITS = LoadLimits(max_bytes=64 * 1024, max_faces=10_000, max_decompressed_bytes=256 * 1024)

OBJ = b"v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n"
PLY = (b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\n"
       b"property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
       b"end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
OFF = b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"
MODEL = (b'<?xml version="1.0"?><model unit="millimeter" xmlns="http://schemas.microsoft.com/'
         b'3dmanufacturing/core/2015/02"><resources><object id="1" type="model"><mesh>'
         b'<vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/>'
         b'<vertex x="0" y="1" z="0"/></vertices><triangles><triangle v1="0" v2="1" v3="2"/>'
         b"</triangles></mesh></object></resources><build><item objectid=\"1\"/></build></model>")
SEEDS = {"stl": [binary_stl(), ascii_stl()], "obj": [OBJ], "ply": [PLY], "off": [OFF],
         "3mf": [MODEL]}


def _check(data: bytes, fmt: str) -> None:
    try:
        mesh = load_mesh_bytes(data, fmt, "mm", LIMITS)
    except MeshError as exc:
        assert exc.args and str(exc)
        return
    assert len(mesh.faces) > 0
    assert np.isfinite(mesh.vertices).all()
    assert mesh.faces.min() >= 0 and mesh.faces.max() < len(mesh.vertices)


@st.composite
def mutated(draw: st.DrawFn, fmt: str) -> bytes:
    """A valid file of ``fmt`` with bytes flipped, cut, inserted or numbers replaced."""
    data = bytearray(draw(st.sampled_from(SEEDS[fmt])))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "word"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=32))
        else:
            data[at:at] = draw(st.sampled_from(
                [b" nan ", b" inf ", b" -1e309 ", b" 99999999999 ", b" -1 ", b"\x00",
                 b"<!DOCTYPE x [<!ENTITY a 'b'>]>", b"\xff\xff\xff\x7f"]))
    out = bytes(data)
    return _zip({"3D/3dmodel.model": out}) if fmt == "3mf" else out


@SETTINGS
@given(data=st.binary(max_size=4096), fmt=st.sampled_from(SUPPORTED_FORMATS))
def test_random_bytes_load_or_refuse(data: bytes, fmt: str) -> None:
    _check(data, fmt)


@SETTINGS
@given(data=st.data(), fmt=st.sampled_from(SUPPORTED_FORMATS))
def test_mutated_files_load_or_refuse(data: st.DataObject, fmt: str) -> None:
    _check(data.draw(mutated(fmt)), fmt)


@SETTINGS
@given(n=st.integers(0, 2**32 - 1), tail=st.binary(max_size=600))
def test_binary_stl_headers_never_allocate_what_they_claim(n: int, tail: bytes) -> None:
    """Whatever triangle count the header claims, only the bytes present are read."""
    _check(b"x" * 80 + n.to_bytes(4, "little") + tail, "stl")
