"""What an attachment really is: its content checked against the type it claims (pure).

3D models must parse to a non-empty mesh with finite coordinates (the geometry loader); PDFs,
images and DICOM files must carry their signature bytes; zipped imaging exports and 3MF packages
are inspected from the zip directory before anything is extracted (decompressed size and ratio
caps against zip bombs, no absolute or parent-directory member names).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .geometry.errors import MeshError
from .geometry.loaders import LoadLimits, load_mesh_bytes
from .models.cases import AttachmentKind

MESH_FORMATS = {"stl": "model/stl", "obj": "model/obj", "ply": "application/ply",
                "off": "model/off", "3mf": "model/3mf"}
SIGNATURES = {
    "pdf": ("application/pdf", b"%PDF-"),
    "png": ("image/png", b"\x89PNG\r\n\x1a\n"),
    "jpg": ("image/jpeg", b"\xff\xd8\xff"),
    "jpeg": ("image/jpeg", b"\xff\xd8\xff"),
}
KIND_FORMATS = {
    AttachmentKind.MODEL_3D: set(MESH_FORMATS),
    AttachmentKind.IMAGING: {"zip", "dcm", "png", "jpg", "jpeg"},
    AttachmentKind.DOCUMENT: {"pdf", "png", "jpg", "jpeg"},
}


@dataclass(frozen=True)
class ZipLimits:
    max_decompressed_bytes: int = 2 * 1024**3
    max_ratio: float = 100.0
    max_members: int = 10_000


class AttachmentRefused(Exception):
    """The file is not what it claims to be, or breaks a limit. ``message`` says which."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def extension(name: str) -> str:
    return PurePosixPath(name.lower()).suffix.lstrip(".")


def inspect_attachment(
    path: Path, original_name: str, kind: AttachmentKind, units: str = "mm",
    zip_limits: ZipLimits | None = None,
) -> str:
    """Return the media type of a valid attachment or raise :class:`AttachmentRefused`."""
    zip_limits = zip_limits or ZipLimits()
    ext = extension(original_name)
    allowed = KIND_FORMATS[kind]
    if ext not in allowed:
        raise AttachmentRefused(
            f"A {kind.value.replace('_', ' ')} attachment must be one of: "
            f"{', '.join('.' + e for e in sorted(allowed))} (got "
            f"{'.' + ext if ext else 'no extension'}).")
    if ext in MESH_FORMATS:
        if ext == "3mf":
            check_zip(path, zip_limits, what="3MF package")
        try:
            load_mesh_bytes(path.read_bytes(), ext, units, LoadLimits(
                max_decompressed_bytes=zip_limits.max_decompressed_bytes,
                max_compression_ratio=zip_limits.max_ratio))
        except MeshError as exc:
            raise AttachmentRefused(f"The {ext.upper()} file cannot be used: {exc}.") from exc
        return MESH_FORMATS[ext]
    if ext == "zip":
        check_zip(path, zip_limits, what="zipped imaging export")
        return "application/zip"
    if ext == "dcm":
        with path.open("rb") as fh:
            head = fh.read(132)
        if head[128:132] != b"DICM":
            raise AttachmentRefused("The file is not a DICOM file (no DICM marker at byte 128).")
        return "application/dicom"
    media_type, magic = SIGNATURES[ext]
    with path.open("rb") as fh:
        if fh.read(len(magic)) != magic:
            raise AttachmentRefused(
                f"The file's content is not {ext.upper()} although its name ends in .{ext}.")
    return media_type


def check_zip(path: Path, limits: ZipLimits, what: str = "zip file") -> None:
    """Refuse zip bombs and unsafe member names, reading only the zip directory."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise AttachmentRefused(f"The {what} is not a valid zip archive.") from exc
    if len(infos) > limits.max_members:
        raise AttachmentRefused(
            f"The {what} has {len(infos)} members; the limit is {limits.max_members}.")
    total = sum(i.file_size for i in infos)
    compressed = max(sum(i.compress_size for i in infos), 1)
    if total > limits.max_decompressed_bytes:
        raise AttachmentRefused(
            f"The {what} would decompress to {total // 2**20} MiB; the limit is "
            f"{limits.max_decompressed_bytes // 2**20} MiB.")
    if total / compressed > limits.max_ratio:
        raise AttachmentRefused(
            f"The {what} is compressed {total / compressed:.0f}:1; more than "
            f"{limits.max_ratio:.0f}:1 is refused as a possible zip bomb.")
    for info in infos:
        name = info.filename
        if name.startswith(("/", "\\")) or ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise AttachmentRefused(f"The {what} contains an unsafe path: {name[:80]!r}.")
        if info.flag_bits & 0x1:
            raise AttachmentRefused(f"The {what} contains encrypted members.")
