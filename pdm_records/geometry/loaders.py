"""Turn uploaded bytes into a ``Mesh``, refusing anything we cannot verify.

Contract of ``load_mesh_bytes``: it either returns a ``Mesh`` with at least one face, finite
coordinates in millimetres and valid indices, or raises ``MeshError`` with a specific code. It never
returns an empty mesh and never lets a parser's own exception escape: trimesh answers garbage with
an empty mesh or with assorted built-in exceptions (IndexError, ValueError, UnboundLocalError,
BadZipFile, ...), measured in shared/notes/mesh-verification.md.

Parsers used:
- binary STL: our own ``np.frombuffer`` reader (the file length must equal ``84 + 50 * n``
  exactly, checked before any allocation, so a header claiming 10^8 triangles costs nothing);
- 3MF: our own reader (zip members and compression ratios are capped before decompression, XML
  with a DTD is refused; trimesh's reader would need lxml and networkx and has no such caps);
- ASCII STL, OBJ, PLY, OFF: ``trimesh.load_mesh(..., process=False)`` so that nothing is merged
  or dropped (with processing, NaN faces are silently removed).
"""

from __future__ import annotations

import io
import re
import warnings
import xml.etree.ElementTree as ET  # nosec B405  # types only; parsing goes through defusedxml
import zipfile
from dataclasses import dataclass

import numpy as np
from defusedxml import DefusedXmlException
from defusedxml import ElementTree as SafeET

from .errors import MeshError
from .mesh import Mesh
from .units import UNIT_NAMES, mm_per_unit, normalize_unit

SUPPORTED_FORMATS: tuple[str, ...] = ("stl", "obj", "ply", "off", "3mf")

_GIB = 1024**3


@dataclass(frozen=True)
class LoadLimits:
    """Resource caps applied before and while parsing (all configurable per deployment).

    ``max_decompressed_bytes`` and ``max_compression_ratio`` defend against zip bombs in 3MF
    (a 3MF is a zip package): they are checked from the zip directory before any member is
    decompressed, and the read itself is capped too, so a directory that lies cannot bypass them.
    """

    max_bytes: int = 2 * _GIB
    max_faces: int = 20_000_000
    max_decompressed_bytes: int = 2 * _GIB
    max_compression_ratio: float = 100.0
    max_zip_members: int = 10_000


DEFAULT_LIMITS = LoadLimits()

# One binary STL record: normal (3 f4), three vertices (9 f4), attribute byte count (u2) = 50 B.
_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])
assert _STL_RECORD.itemsize == 50  # nosec B101  # import-time self-check of a constant dtype


def load_mesh_bytes(
    data: bytes,
    file_type: str,
    units: str = "mm",
    limits: LoadLimits = DEFAULT_LIMITS,
) -> Mesh:
    """Parse ``data`` as ``file_type`` with coordinates in ``units``; return a ``Mesh`` in mm.

    Raises ``MeshError`` (codes: empty, truncated, no_faces, non_finite, bad_index,
    unknown_format, format_mismatch, parse_error, too_large, zip_bomb, unsupported, bad_units).
    """
    unit = normalize_unit(units)
    ftype = file_type.strip().lower().lstrip(".")
    if ftype not in SUPPORTED_FORMATS:
        raise MeshError(
            "unknown_format",
            f"unsupported file type {file_type!r}: use one of {', '.join(SUPPORTED_FORMATS)}",
        )
    if len(data) == 0:
        raise MeshError("empty", "the file is empty")
    if len(data) > limits.max_bytes:
        raise MeshError(
            "too_large", f"the file has {len(data)} bytes, more than the limit {limits.max_bytes}"
        )

    notes: list[str] = []
    if ftype == "stl":
        vertices, faces = _load_stl(data, limits)
    elif ftype == "3mf":
        vertices, faces = _load_3mf(data, limits, unit, notes)
    else:
        vertices, faces = _load_with_trimesh(data, ftype)

    return _finish(vertices, faces, ftype, unit, limits, tuple(notes))


def _finish(
    vertices: np.ndarray,
    faces: np.ndarray,
    ftype: str,
    unit: str,
    limits: LoadLimits,
    notes: tuple[str, ...],
) -> Mesh:
    """Validate parser output and convert to millimetres (common to every format)."""
    vertices = np.asarray(vertices)
    faces = np.asarray(faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or len(faces) == 0:
        raise MeshError(
            "no_faces",
            f"the {ftype.upper()} file holds no triangles (is it really {ftype.upper()}? "
            "quad-only files are not supported)",
        )
    if len(faces) > limits.max_faces:
        raise MeshError(
            "too_large", f"{len(faces)} triangles exceed the limit of {limits.max_faces}"
        )
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
        raise MeshError("parse_error", "the file's vertex list is malformed")
    # Checked on the referenced vertices only would be friendlier, but a NaN anywhere in a
    # medical-device file is a sign of a broken export: refuse it.
    if not np.isfinite(vertices).all():
        bad = int((~np.isfinite(vertices)).any(axis=1).sum())
        raise MeshError("non_finite", f"{bad} vertices have NaN or infinite coordinates")
    faces = faces.astype(np.int64, copy=False)
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise MeshError("bad_index", "a face refers to a vertex index that does not exist")
    factor = mm_per_unit(unit)
    verts_mm = vertices.astype(np.float64)  # always a copy: the Mesh owns its arrays
    if factor != 1.0:
        verts_mm *= factor
    if not np.isfinite(verts_mm).all():  # e.g. 1e308 m overflows when converted to mm
        raise MeshError("non_finite", "coordinates overflow when converted to millimetres")
    return Mesh(
        vertices=verts_mm,
        faces=np.ascontiguousarray(faces),
        file_type=ftype,
        source_unit=unit,
        load_notes=notes,
    )


# --------------------------------------------------------------------------------------- STL


def _load_stl(data: bytes, limits: LoadLimits) -> tuple[np.ndarray, np.ndarray]:
    if len(data) >= 84:
        n = int.from_bytes(data[80:84], "little")
        if len(data) == 84 + 50 * n:
            return _parse_binary_stl(data, n, limits)
    if _looks_like_ascii_stl(data):
        return _load_with_trimesh(data, "stl")
    if len(data) < 84:
        raise MeshError(
            "truncated",
            f"a binary STL needs at least 84 bytes, this file has {len(data)} and is not ASCII STL",
        )
    n = int.from_bytes(data[80:84], "little")
    raise MeshError(
        "truncated",
        f"binary STL header announces {n} triangles ({84 + 50 * n} bytes) "
        f"but the file has {len(data)} bytes",
    )


def _looks_like_ascii_stl(data: bytes) -> bool:
    head = data[:1024].lstrip()
    return head[:5].lower() == b"solid" and b"\x00" not in head and b"facet" in data[:4096]


def _parse_binary_stl(data: bytes, n: int, limits: LoadLimits) -> tuple[np.ndarray, np.ndarray]:
    if n == 0:
        raise MeshError("no_faces", "the binary STL announces 0 triangles")
    if n > limits.max_faces:
        raise MeshError("too_large", f"{n} triangles exceed the limit of {limits.max_faces}")
    records = np.frombuffer(data, dtype=_STL_RECORD, count=n, offset=84)
    # The stored facet normal is ignored on purpose: exporters often write zeros or stale
    # normals, and every check here derives orientation from the vertex order (right-hand rule).
    vertices = records["v"].reshape(-1, 3)
    faces = np.arange(3 * n, dtype=np.int64).reshape(n, 3)
    return vertices, faces


# --------------------------------------------------------------------------- trimesh formats


def _load_with_trimesh(data: bytes, ftype: str) -> tuple[np.ndarray, np.ndarray]:
    import trimesh  # local: keeps import of this module cheap for the CLI's --help

    if ftype in ("obj", "off", "stl"):
        # Text formats: binary content means the wrong type was declared (e.g. a binary STL
        # uploaded as OBJ); trimesh would return an empty mesh without complaint.
        if b"\x00" in data[:4096]:
            raise MeshError(
                "format_mismatch",
                f"the file contains binary data but {ftype.upper()} (ASCII) is a text format; "
                "was a binary file uploaded with the wrong type?",
            )
        # Decode ourselves (UTF-8, else Latin-1 which never fails) so trimesh never reaches for
        # its optional charset detector, whose absence raises ModuleNotFoundError.
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        data = text.encode("utf-8")
    if ftype == "ply" and not data.lstrip()[:3].lower() == b"ply":
        raise MeshError("format_mismatch", "a PLY file must start with 'ply'")
    if ftype == "off" and not re.match(rb"\s*(#[^\n]*\n\s*)*[A-Z]*OFF", data[:4096]):
        raise MeshError("format_mismatch", "an OFF file must start with 'OFF'")

    try:
        with warnings.catch_warnings():
            # Parsers warn on odd input (numpy casts, empty lines); the result is validated
            # below, so the warnings carry no information we would act on.
            warnings.simplefilter("ignore")
            loaded = trimesh.load_mesh(io.BytesIO(data), file_type=ftype, process=False)
    except MemoryError:
        raise MeshError("too_large", "the file needs more memory than available to parse") from None
    except Exception as exc:  # any parser failure is a property of the upload
        raise MeshError(
            "parse_error", f"the {ftype.upper()} parser rejected the file ({type(exc).__name__})"
        ) from exc
    vertices = np.asarray(getattr(loaded, "vertices", np.empty((0, 3))), dtype=np.float64)
    faces = np.asarray(getattr(loaded, "faces", np.empty((0, 3))), dtype=np.int64)
    return vertices, faces.reshape(-1, 3) if faces.size else np.empty((0, 3), np.int64)


# --------------------------------------------------------------------------------------- 3MF

_NS_CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
_NS_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"
_REL_MODEL = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
_3MF_UNITS = {
    "micron": None,
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
    "inch": "in",
    "foot": None,
}
_MAX_COMPONENT_DEPTH = 16


def _check_zip(zf: zipfile.ZipFile, size: int, limits: LoadLimits) -> None:
    infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        raise MeshError("too_large", f"the 3MF package has {len(infos)} members")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > 0:
            ratio = info.file_size / max(info.compress_size, 1)
            if ratio > limits.max_compression_ratio:
                raise MeshError(
                    "zip_bomb",
                    f"3MF member {info.filename!r} expands {ratio:.0f}:1, more than the limit "
                    f"{limits.max_compression_ratio:.0f}:1",
                )
    if total > limits.max_decompressed_bytes:
        raise MeshError(
            "too_large",
            f"the 3MF package expands to {total} bytes, more than the limit "
            f"{limits.max_decompressed_bytes}",
        )
    if size > 0 and total / size > limits.max_compression_ratio:
        raise MeshError("zip_bomb", f"the 3MF package expands {total / size:.0f}:1")


def _read_member(zf: zipfile.ZipFile, name: str, limits: LoadLimits) -> bytes:
    info = zf.getinfo(name)
    with zf.open(info) as fh:
        # zipfile stops at the declared size and then checks the CRC, so a member whose
        # directory entry understates its size fails instead of expanding without bound.
        out = fh.read(min(info.file_size, limits.max_decompressed_bytes) + 1)
    if len(out) > limits.max_decompressed_bytes:
        raise MeshError("too_large", f"3MF member {name!r} exceeds the decompression limit")
    return out


def _parse_xml(blob: bytes, what: str) -> ET.Element:
    # OPC packages (3MF) must not use DTDs; refusing them removes entity-expansion attacks
    # (billion laughs) and external entities before the parser ever sees the document.
    if b"<!DOCTYPE" in blob or b"<!ENTITY" in blob:
        raise MeshError("unsupported", f"the 3MF {what} declares a DTD, which 3MF forbids")
    try:
        # defusedxml refuses DTDs, entities and external references once more, in the parser.
        root: ET.Element = SafeET.fromstring(blob, forbid_dtd=True)
        return root
    except DefusedXmlException as exc:
        raise MeshError("unsupported", f"the 3MF {what} declares a DTD or entities, which 3MF "
                        "forbids") from exc
    except ET.ParseError as exc:
        raise MeshError("parse_error", f"the 3MF {what} is not well-formed XML ({exc})") from exc


def _model_path(zf: zipfile.ZipFile, limits: LoadLimits) -> str:
    names = set(zf.namelist())
    if "_rels/.rels" in names:
        rels = _parse_xml(_read_member(zf, "_rels/.rels", limits), "relationships part")
        for rel in rels.iter(f"{{{_NS_RELS}}}Relationship"):
            if rel.get("Type") == _REL_MODEL:
                target = (rel.get("Target") or "").lstrip("/")
                if target in names:
                    return target
    if "3D/3dmodel.model" in names:
        return "3D/3dmodel.model"
    raise MeshError("parse_error", "the 3MF package has no 3D model part")


def _parse_transform(text: str | None) -> np.ndarray:
    m = np.eye(4)
    if not text:
        return m
    try:
        vals = [float(x) for x in text.split()]
    except ValueError as exc:
        raise MeshError("parse_error", f"bad 3MF transform {text!r}") from exc
    if len(vals) != 12 or not np.isfinite(vals).all():
        raise MeshError("parse_error", f"bad 3MF transform {text!r}")
    # 3MF stores the 3x4 matrix row by row for row vectors: p' = [x y z 1] @ M.
    m[:3, :3] = np.array(vals[:9]).reshape(3, 3)
    m[3, :3] = vals[9:]
    return m


def _load_3mf(
    data: bytes, limits: LoadLimits, unit: str, notes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MeshError("parse_error", "the 3MF file is not a valid zip package") from exc
    with zf:
        _check_zip(zf, len(data), limits)
        try:
            path = _model_path(zf, limits)
            root = _parse_xml(_read_member(zf, path, limits), "model part")
        except MeshError:
            raise
        except Exception as exc:  # zlib errors, CRC mismatches, bad member names
            raise MeshError(
                "parse_error", f"the 3MF package is damaged ({type(exc).__name__})"
            ) from exc
    try:
        return _assemble_3mf(root, unit, notes, limits)
    except MeshError:
        raise
    except MemoryError:
        raise MeshError("too_large", "the 3MF model needs more memory than available") from None
    except Exception as exc:  # anything else the document provokes is a property of the upload
        raise MeshError(
            "parse_error", f"the 3MF model is malformed ({type(exc).__name__})"
        ) from exc


def _assemble_3mf(
    root: ET.Element, unit: str, notes: list[str], limits: LoadLimits
) -> tuple[np.ndarray, np.ndarray]:
    ns = f"{{{_NS_CORE}}}"
    if root.tag != f"{ns}model":
        raise MeshError(
            "parse_error", "the 3MF model part has no <model> root in the 3MF core namespace"
        )
    declared = root.get("unit", "millimeter")
    declared_key = _3MF_UNITS.get(declared)
    if declared_key != unit:
        notes.append(
            f"the 3MF file declares unit '{declared}' but the upload was declared in "
            f"{UNIT_NAMES[unit]}; the declared upload unit was used"
        )
    meshes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    components: dict[str, list[tuple[str, np.ndarray]]] = {}
    resources = root.find(f"{ns}resources")
    if resources is None:
        raise MeshError("no_faces", "the 3MF model has no resources")
    total_faces = 0
    for obj in resources.findall(f"{ns}object"):
        oid = obj.get("id")
        if oid is None:
            raise MeshError("parse_error", "a 3MF object has no id")
        mesh_el = obj.find(f"{ns}mesh")
        if mesh_el is not None:
            try:
                verts_el = mesh_el.find(f"{ns}vertices")
                tris_el = mesh_el.find(f"{ns}triangles")
                verts = np.array(
                    [
                        (float(v.attrib["x"]), float(v.attrib["y"]), float(v.attrib["z"]))
                        for v in (verts_el if verts_el is not None else ())
                    ],
                    dtype=np.float64,
                ).reshape(-1, 3)
                tris = np.array(
                    [
                        (int(t.attrib["v1"]), int(t.attrib["v2"]), int(t.attrib["v3"]))
                        for t in (tris_el if tris_el is not None else ())
                    ],
                    dtype=np.int64,
                ).reshape(-1, 3)
            except (KeyError, ValueError) as exc:
                raise MeshError(
                    "parse_error", f"3MF object {oid}: bad vertex or triangle"
                ) from exc
            total_faces += len(tris)
            if total_faces > limits.max_faces:
                raise MeshError("too_large", f"more than {limits.max_faces} triangles")
            if len(tris) and (tris.min() < 0 or tris.max() >= len(verts)):
                raise MeshError("bad_index", f"3MF object {oid}: triangle index out of range")
            meshes[oid] = (verts, tris)
        comps = obj.find(f"{ns}components")
        if comps is not None:
            lst = []
            for c in comps.findall(f"{ns}component"):
                if any(k.endswith("}path") for k in c.attrib):
                    raise MeshError(
                        "unsupported", "3MF production-extension paths are not supported"
                    )
                lst.append((c.get("objectid", ""), _parse_transform(c.get("transform"))))
            components[oid] = lst

    def expand(
        oid: str, xf: np.ndarray, depth: int, out: list[tuple[np.ndarray, np.ndarray]]
    ) -> None:
        if depth > _MAX_COMPONENT_DEPTH:
            raise MeshError("unsupported", "3MF components nest too deeply (or form a cycle)")
        if oid in meshes:
            v, t = meshes[oid]
            expanded[0] += len(t)
            if expanded[0] > limits.max_faces:
                # Instancing can multiply a small object into billions of triangles.
                raise MeshError("too_large", f"the 3MF build expands to more than "
                                f"{limits.max_faces} triangles")
            vh = np.c_[v, np.ones(len(v))] @ xf
            out.append((vh[:, :3], t))
        for child, cxf in components.get(oid, []):
            if child not in meshes and child not in components:
                raise MeshError("parse_error", f"3MF component refers to unknown object {child}")
            expand(child, cxf @ xf, depth + 1, out)

    expanded = [0]
    parts: list[tuple[np.ndarray, np.ndarray]] = []
    build = root.find(f"{ns}build")
    items = build.findall(f"{ns}item") if build is not None else []
    if not items:
        raise MeshError("no_faces", "the 3MF model has no build items")
    for item in items:
        if any(k.endswith("}path") for k in item.attrib):
            raise MeshError("unsupported", "3MF production-extension paths are not supported")
        oid = item.get("objectid", "")
        if oid not in meshes and oid not in components:
            raise MeshError("parse_error", f"3MF build item refers to unknown object {oid}")
        expand(oid, _parse_transform(item.get("transform")), 0, parts)
    if not parts:
        return np.empty((0, 3)), np.empty((0, 3), np.int64)
    offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
    vertices = np.concatenate([v for v, _ in parts])
    faces = np.concatenate([t + o for (_, t), o in zip(parts, offsets, strict=True)])
    return vertices, faces
