"""Loading meshes from bytes: every format, units, and every way an upload can be refused."""

from __future__ import annotations

import io
import struct
import time
import zipfile

import numpy as np
import pdm_meshgen as G
import pytest

from pdm_records.geometry import LoadLimits, MeshError, load_mesh_bytes
from pdm_records.geometry.errors import MESH_ERROR_CODES

CUBE = G.box((0, 0, 0), (10, 20, 30))


def _code(data: bytes, file_type: str, **kw: object) -> str:
    with pytest.raises(MeshError) as info:
        load_mesh_bytes(data, file_type, **kw)  # type: ignore[arg-type]
    assert info.value.code in MESH_ERROR_CODES
    assert info.value.message  # a human sentence, not empty
    return info.value.code


@pytest.mark.parametrize(
    ("file_type", "writer"),
    [
        ("stl", G.binary_stl),
        ("stl", G.ascii_stl),
        ("obj", G.obj),
        ("ply", G.ply_ascii),
        ("off", G.off),
        ("3mf", G.three_mf),
    ],
)
def test_every_format_loads_the_same_geometry(file_type: str, writer) -> None:  # type: ignore[no-untyped-def]
    mesh = load_mesh_bytes(writer(*CUBE), file_type)
    assert len(mesh.faces) == 12
    tri = mesh.vertices[mesh.faces]
    expected = CUBE[0][CUBE[1]]
    np.testing.assert_allclose(np.sort(tri.reshape(-1, 3), axis=0),
                               np.sort(expected.reshape(-1, 3), axis=0))
    assert mesh.file_type == file_type
    # arrays are frozen: a measurement cannot alter the input of the next
    with pytest.raises(ValueError):
        mesh.vertices[0, 0] = 1.0


def test_binary_stl_is_a_triangle_soup_in_file_order() -> None:
    mesh = load_mesh_bytes(G.binary_stl(*CUBE), "stl")
    assert mesh.vertices.shape == (36, 3)
    np.testing.assert_array_equal(mesh.faces, np.arange(36).reshape(12, 3))


def test_binary_stl_whose_header_starts_with_solid_is_still_binary() -> None:
    data = G.binary_stl(*CUBE, header=b"solid but binary")
    assert len(load_mesh_bytes(data, "stl").faces) == 12


@pytest.mark.parametrize(("unit", "factor"), [("mm", 1.0), ("cm", 10.0), ("m", 1000.0),
                                              ("in", 25.4), ("inch", 25.4)])
def test_units_are_converted_to_mm(unit: str, factor: float) -> None:
    mesh = load_mesh_bytes(G.binary_stl(*CUBE), "stl", units=unit)
    assert mesh.vertices.max() == pytest.approx(30.0 * factor)


def test_unknown_unit_is_refused() -> None:
    assert _code(G.binary_stl(*CUBE), "stl", units="furlong") == "bad_units"


def test_empty_bytes() -> None:
    assert _code(b"", "stl") == "empty"


def test_random_bytes() -> None:
    data = np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    assert _code(data, "stl") == "truncated"
    assert _code(data, "obj") == "format_mismatch"
    assert _code(data, "ply") == "format_mismatch"
    assert _code(data, "3mf") == "parse_error"


def test_truncated_binary_stl() -> None:
    data = G.binary_stl(*CUBE)
    assert _code(data[:-10], "stl") == "truncated"
    assert _code(data[:50], "stl") == "truncated"


def test_header_claiming_1e8_triangles_is_refused_quickly() -> None:
    data = b"x" * 80 + struct.pack("<I", 100_000_000) + b"\0" * 500
    start = time.perf_counter()
    code = _code(data, "stl")
    assert code == "truncated"
    assert time.perf_counter() - start < 0.5  # no 5 GB allocation attempted


def test_face_limit() -> None:
    assert _code(G.binary_stl(*CUBE), "stl", limits=LoadLimits(max_faces=5)) == "too_large"


def test_binary_stl_declared_as_obj() -> None:
    assert _code(G.binary_stl(*CUBE), "obj") == "format_mismatch"


def test_zero_faces() -> None:
    data = b"x" * 80 + struct.pack("<I", 0)
    assert _code(data, "stl") == "no_faces"
    assert _code(b"# only a comment\nv 0 0 0\n", "obj") == "no_faces"


def test_nan_coordinates_are_refused() -> None:
    v, f = CUBE
    v = v.copy()
    v[3, 1] = np.nan
    assert _code(G.binary_stl(v, f), "stl") == "non_finite"
    v[3, 1] = np.inf
    assert _code(G.obj(v, f), "obj") == "non_finite"


def test_out_of_range_index() -> None:
    assert _code(b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "obj") in {"bad_index", "parse_error"}


def test_unknown_format() -> None:
    assert _code(G.binary_stl(*CUBE), "step") == "unknown_format"


def test_parse_errors_of_any_kind_are_wrapped() -> None:
    bad_ply = b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n"
    assert _code(bad_ply, "ply") in {"parse_error", "no_faces"}


def _zip(members: dict[str, bytes], level: int = 9) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, blob in members.items():
            zf.writestr(name, blob)
    return buf.getvalue()


def test_zip_bomb_3mf_is_refused_before_decompression() -> None:
    # 50 MB of zeros compress ~1000:1; the directory alone reveals it.
    bomb = _zip({"3D/3dmodel.model": b"\0" * 50_000_000})
    start = time.perf_counter()
    assert _code(bomb, "3mf") == "zip_bomb"
    assert time.perf_counter() - start < 1.0


def test_3mf_total_decompressed_limit() -> None:
    data = G.three_mf(*CUBE)
    assert _code(data, "3mf", limits=LoadLimits(max_decompressed_bytes=100)) == "too_large"


def test_3mf_with_dtd_is_refused() -> None:
    model = (b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa">]>'
             b'<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"/>')
    assert _code(_zip({"3D/3dmodel.model": model}, level=0), "3mf") == "unsupported"


def test_3mf_with_dtd_in_utf16_is_refused_by_the_parser() -> None:
    # UTF-16 hides "<!DOCTYPE" from the byte check; defusedxml refuses it in the parser (bandit
    # B314: no stdlib XML parsing of uploads).
    model = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE lol [<!ENTITY a "aaaa">]>'
             '<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">&a;</model>'
             ).encode("utf-16")
    assert b"<!DOCTYPE" not in model
    assert _code(_zip({"3D/3dmodel.model": model}, level=0), "3mf") == "unsupported"


def test_3mf_transform_and_unit_note() -> None:
    v, f = CUBE
    data = G.three_mf(v, f, unit="inch", transform="1 0 0 0 1 0 0 0 1 100 0 0")
    mesh = load_mesh_bytes(data, "3mf", units="mm")
    assert mesh.vertices[:, 0].min() == pytest.approx(100.0)
    assert any("inch" in n for n in mesh.load_notes)


def test_3mf_broken_xml() -> None:
    assert _code(_zip({"3D/3dmodel.model": b"<model><unclosed>"}), "3mf") == "parse_error"


def test_3mf_component_cycle_is_refused() -> None:
    model = (
        b'<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        b'<resources><object id="1"><components><component objectid="2"/></components></object>'
        b'<object id="2"><components><component objectid="1"/></components></object>'
        b'</resources><build><item objectid="1"/></build></model>'
    )
    assert _code(_zip({"3D/3dmodel.model": model}, level=0), "3mf") == "unsupported"


def test_3mf_bad_triangle_attribute() -> None:
    model = (
        b'<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        b'<resources><object id="1"><mesh><vertices><vertex x="0" y="0" z="zero"/></vertices>'
        b'<triangles/></mesh></object></resources><build><item objectid="1"/></build></model>'
    )
    assert _code(_zip({"3D/3dmodel.model": model}, level=0), "3mf") == "parse_error"
