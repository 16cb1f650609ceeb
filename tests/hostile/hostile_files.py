"""Hostile files, generated in code: malformed meshes, lying headers, zip bombs, odd names."""

from __future__ import annotations

import io
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from tests.meshes import PDF, ascii_stl, binary_stl, zip_bomb


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def lying_stl_header(claimed: int = 10**8) -> bytes:
    """A binary STL whose header claims ``claimed`` triangles but holds one."""
    body = binary_stl()
    return body[:80] + struct.pack("<I", claimed) + body[84:134]


def nested_zip(depth: int = 40) -> bytes:
    data = b"not a model"
    for level in range(depth):
        data = _zip({f"level{level}.zip": data})
    return data


def deep_xml_3mf(depth: int = 50_000) -> bytes:
    model = (b'<?xml version="1.0"?><model xmlns="http://schemas.microsoft.com/3dmanufacturing/'
             b'core/2015/02">' + b"<a>" * depth + b"</a>" * depth + b"</model>")
    return _zip({"3D/3dmodel.model": model})


def billion_laughs_3mf() -> bytes:
    entities = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 9))
    model = (f'<?xml version="1.0"?><!DOCTYPE model [<!ENTITY l0 "lol">{entities}]>'
             '<model>&l8;</model>').encode()
    return _zip({"3D/3dmodel.model": model})


@dataclass(frozen=True)
class HostileFile:
    id: str
    make: Callable[[], bytes]
    name: str
    status: int  # expected status of the API call (refusals name the "file" field)
    stored_name: str | None = None  # the display name kept when the file is accepted


MESH_FILES: tuple[HostileFile, ...] = (
    HostileFile("truncated_stl", lambda: binary_stl()[:-7], "part.stl", 422),
    HostileFile("stl_header_claims_1e8_triangles", lying_stl_header, "part.stl", 422),
    HostileFile("stl_header_claims_zero", lambda: lying_stl_header(0), "part.stl", 422),
    HostileFile("ascii_stl_nan", lambda: ascii_stl().replace(b"vertex 0.0", b"vertex nan", 1),
                "part.stl", 422),
    HostileFile("ascii_stl_inf", lambda: ascii_stl().replace(b"vertex 0.0", b"vertex inf", 1),
                "part.stl", 422),
    HostileFile("ascii_stl_truncated", lambda: ascii_stl()[:200], "part.stl", 422),
    HostileFile("obj_nan", lambda: b"v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "part.obj", 422),
    HostileFile("obj_index_out_of_range", lambda: b"v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 99\n",
                "part.obj", 422),
    HostileFile("ply_lying_vertex_count", lambda: (
        b"ply\nformat ascii 1.0\nelement vertex 100000000\nproperty float x\nproperty float y\n"
        b"property float z\nelement face 1\nproperty list uchar int vertex_indices\n"
        b"end_header\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n"), "part.ply", 422),
    HostileFile("off_garbage", lambda: b"OFF\n3 1 0\n0 0 0\n1 0\n", "part.off", 422),
    HostileFile("empty", lambda: b"", "part.stl", 422),
    HostileFile("random_bytes", lambda: bytes(range(256)) * 8, "part.stl", 422),
    HostileFile("pdf_named_stl", lambda: PDF, "part.stl", 422),
    HostileFile("3mf_zip_bomb", lambda: zip_bomb(size=20 * 1024 * 1024), "part.3mf", 422),
    HostileFile("3mf_nested_zips", nested_zip, "part.3mf", 422),
    HostileFile("3mf_deeply_nested_xml", deep_xml_3mf, "part.3mf", 422),
    HostileFile("3mf_billion_laughs", billion_laughs_3mf, "part.3mf", 422),
    HostileFile("3mf_traversal_member", lambda: _zip({"../../etc/3dmodel.model": b"<model/>"}),
                "part.3mf", 422),
    HostileFile("3mf_not_a_zip", lambda: b"PK\x03\x04 but not really a zip", "part.3mf", 422),
    HostileFile("no_extension", binary_stl, "part", 422),
    HostileFile("executable_extension", binary_stl, "part.stl.exe", 422),
    HostileFile("oversized", lambda: b"solid x\n" + b" " * (1024 * 1024 + 16), "part.stl", 413),
    # Names: the base name is kept for display (escaped), never used as a path.
    HostileFile("name_path_traversal", binary_stl, "../../etc/passwd.stl", 201, "passwd.stl"),
    HostileFile("name_absolute_path", binary_stl, "/etc/cron.d/job.stl", 201, "job.stl"),
    # Multipart quoting eats the backslashes: either way no path separator survives.
    HostileFile("name_windows_path", binary_stl, "C:\\Windows\\System32\\x.stl", 201,
                "C:WindowsSystem32x.stl"),
    HostileFile("name_nul_byte", binary_stl, "scan\x00.exe.stl", 201, "scan.exe.stl"),
    HostileFile("name_rtl_override", binary_stl, "scan\u202eltS.stl", 201, "scanltS.stl"),
    HostileFile("name_html", binary_stl, "<img src=x onerror=alert(1)>.stl", 201,
                "<img src=x onerror=alert(1)>.stl"),
    HostileFile("name_sql", binary_stl, "x'; DROP TABLE stored_files; --.stl", 201,
                "x'; DROP TABLE stored_files; --.stl"),
    HostileFile("name_very_long", binary_stl, "a" * 400 + ".stl", 201, "a" * 251 + ".stl"),
    HostileFile("name_confusable", binary_stl, "ѕсаn.stl", 201, "ѕсаn.stl"),
    HostileFile("wrong_part_content_type", binary_stl, "scan.stl", 201, "scan.stl"),
)
FILE_BY_ID = {f.id: f for f in MESH_FILES}
