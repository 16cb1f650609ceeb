"""Meshes with exactly known properties, and writers for the file formats under test.

Pure numpy (no trimesh) so the expected values do not come from the library under suspicion.
"""

from __future__ import annotations

import io
import struct
import zipfile

import numpy as np

# Outward-wound unit cube: 8 corners, 12 triangles (two per side).
_CUBE_V = np.array(
    [[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]],
    dtype=np.float64,
)
_CUBE_F = np.array(
    [
        [0, 2, 1], [0, 3, 2],  # z = 0, normal -z
        [4, 5, 6], [4, 6, 7],  # z = 1, normal +z
        [0, 1, 5], [0, 5, 4],  # y = 0, normal -y
        [2, 3, 7], [2, 7, 6],  # y = 1, normal +y
        [1, 2, 6], [1, 6, 5],  # x = 1, normal +x
        [0, 4, 7], [0, 7, 3],  # x = 0, normal -x
    ],
    dtype=np.int64,
)


def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """Axis-aligned box, outward wound."""
    lo_a, hi_a = np.asarray(lo, float), np.asarray(hi, float)
    return lo_a + _CUBE_V * (hi_a - lo_a), _CUBE_F.copy()


def combine(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    vs, fs, off = [], [], 0
    for v, f in parts:
        vs.append(v)
        fs.append(f + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(fs)


def invert(part: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    v, f = part
    return v, f[:, ::-1].copy()


def hollow_box(size: float = 10.0, wall: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Closed box with a closed inner cavity: every wall exactly ``wall`` thick."""
    outer = box((0, 0, 0), (size, size, size))
    inner = invert(box((wall,) * 3, (size - wall,) * 3))
    return combine(outer, inner)


def bar(length: float = 10.0, segments: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Closed 1 x 1 square tube along x from 0 to ``length``, with ``segments`` rings."""
    rings = []
    for i in range(segments + 1):
        x = length * i / segments
        rings.append([[x, 0, 0], [x, 1, 0], [x, 1, 1], [x, 0, 1]])
    v = np.array(rings, dtype=np.float64).reshape(-1, 3)
    faces = []
    for i in range(segments):
        a, b = 4 * i, 4 * (i + 1)
        for k in range(4):
            k2 = (k + 1) % 4
            # side quad between ring i and ring i+1, outward
            faces.append([a + k, a + k2, b + k2])
            faces.append([a + k, b + k2, b + k])
    # end caps
    faces.append([0, 2, 1])
    faces.append([0, 3, 2])
    e = 4 * segments
    faces.append([e, e + 1, e + 2])
    faces.append([e, e + 2, e + 3])
    return v, np.array(faces, dtype=np.int64)


def folded_bar() -> tuple[np.ndarray, np.ndarray]:
    """A single closed shell pushed through itself.

    A 12-segment bar whose last four rings are lifted and rotated so that its end passes
    through the middle of the same bar: one shell, one body, watertight, self-intersecting.
    """
    v, f = bar(12.0, 12)
    v = v.copy()
    moving = v[:, 0] > 8.5  # rings at x = 9, 10, 11, 12
    # Rotate 130 degrees about the vertical axis through (8, 0.5) so the end swings back over
    # the bar and down through it.
    ang = np.radians(130.0)
    c, s = np.cos(ang), np.sin(ang)
    pivot = np.array([8.0, 0.5, 0.0])
    p = v[moving] - pivot
    rot = np.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], axis=1)
    v[moving] = rot + pivot
    return v, f


def uv_sphere(radius: float = 1.0, rings: int = 16, sectors: int = 24) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Closed outward-wound UV sphere with single pole vertices."""
    verts = [[0.0, 0.0, radius]]
    for i in range(1, rings):
        th = np.pi * i / rings
        for j in range(sectors):
            ph = 2 * np.pi * j / sectors
            verts.append([radius * np.sin(th) * np.cos(ph), radius * np.sin(th) * np.sin(ph),
                          radius * np.cos(th)])
    verts.append([0.0, 0.0, -radius])
    v = np.array(verts)
    south = len(v) - 1
    faces = []
    for j in range(sectors):
        faces.append([0, 1 + j, 1 + (j + 1) % sectors])
    for i in range(rings - 2):
        a0 = 1 + i * sectors
        b0 = a0 + sectors
        for j in range(sectors):
            j2 = (j + 1) % sectors
            faces.append([a0 + j, b0 + j, b0 + j2])
            faces.append([a0 + j, b0 + j2, a0 + j2])
    last = 1 + (rings - 2) * sectors
    for j in range(sectors):
        faces.append([south, last + (j + 1) % sectors, last + j])
    return v, np.array(faces, dtype=np.int64)


def binary_stl(v: np.ndarray, f: np.ndarray, header: bytes = b"pdm test") -> bytes:
    tri = np.asarray(v, dtype=np.float32)[f]
    rec = np.zeros(len(f), dtype=[("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["v"] = tri
    return header.ljust(80, b" ")[:80] + struct.pack("<I", len(f)) + rec.tobytes()


def ascii_stl(v: np.ndarray, f: np.ndarray) -> bytes:
    lines = ["solid test"]
    for tri in np.asarray(v, dtype=float)[f].tolist():
        lines += ["facet normal 0 0 0", " outer loop"]
        lines += [f"  vertex {x!r} {y!r} {z!r}" for x, y, z in tri]
        lines += [" endloop", "endfacet"]
    lines.append("endsolid test")
    return ("\n".join(lines) + "\n").encode()


def obj(v: np.ndarray, f: np.ndarray) -> bytes:
    out = [f"v {x!r} {y!r} {z!r}" for x, y, z in np.asarray(v, dtype=float).tolist()]
    out += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in np.asarray(f).tolist()]
    return ("\n".join(out) + "\n").encode()


def off(v: np.ndarray, f: np.ndarray) -> bytes:
    out = ["OFF", f"{len(v)} {len(f)} 0"]
    out += [f"{x!r} {y!r} {z!r}" for x, y, z in np.asarray(v, dtype=float).tolist()]
    out += [f"3 {a} {b} {c}" for a, b, c in np.asarray(f).tolist()]
    return ("\n".join(out) + "\n").encode()


def ply_ascii(v: np.ndarray, f: np.ndarray) -> bytes:
    head = [
        "ply", "format ascii 1.0", f"element vertex {len(v)}", "property float x",
        "property float y", "property float z", f"element face {len(f)}",
        "property list uchar int vertex_indices", "end_header",
    ]
    body = [f"{x!r} {y!r} {z!r}" for x, y, z in np.asarray(v, dtype=float).tolist()]
    body += [f"3 {a} {b} {c}" for a, b, c in np.asarray(f).tolist()]
    return ("\n".join(head + body) + "\n").encode()


def three_mf(v: np.ndarray, f: np.ndarray, unit: str = "millimeter",
             transform: str | None = None) -> bytes:
    verts = "".join(
        f'<vertex x="{x!r}" y="{y!r}" z="{z!r}"/>'
        for x, y, z in np.asarray(v, dtype=float).tolist()
    )
    tris = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in np.asarray(f).tolist())
    item = f'<item objectid="1"{f" transform={chr(34)}{transform}{chr(34)}" if transform else ""}/>'
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<model unit="{unit}" xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        f'<resources><object id="1" type="model"><mesh><vertices>{verts}</vertices>'
        f"<triangles>{tris}</triangles></mesh></object></resources>"
        f"<build>{item}</build></model>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("_rels/.rels", rels)
        zf.writestr("3D/3dmodel.model", model)
    return buf.getvalue()
