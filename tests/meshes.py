"""Meshes generated in code, with known properties, as file bytes."""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

CUBE_VERTICES = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0],
                          [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=float)
CUBE_FACES = np.array([[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
                       [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])


def binary_stl(vertices: np.ndarray = CUBE_VERTICES, faces: np.ndarray = CUBE_FACES,
               scale: float = 10.0) -> bytes:
    triangles = vertices[faces] * scale
    out = io.BytesIO()
    out.write(b"pdm-records test mesh".ljust(80, b" "))
    out.write(struct.pack("<I", len(triangles)))
    for tri in triangles:
        out.write(struct.pack("<3f", 0.0, 0.0, 0.0))
        out.write(struct.pack("<9f", *tri.ravel()))
        out.write(b"\x00\x00")
    return out.getvalue()


def ascii_stl(scale: float = 10.0) -> bytes:
    lines = ["solid cube"]
    for tri in CUBE_VERTICES[CUBE_FACES] * scale:
        lines += ["facet normal 0 0 0", " outer loop"]
        lines += [f"  vertex {x} {y} {z}" for x, y, z in tri]
        lines += [" endloop", "endfacet"]
    lines.append("endsolid cube")
    return ("\n".join(lines) + "\n").encode()


def zip_bomb(name: str = "3D/3dmodel.model", size: int = 50 * 1024 * 1024) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, b"\x00" * size)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
