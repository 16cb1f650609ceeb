"""Errors raised by the geometry core.

The geometry core is pure (no Flask, no database): the web layer maps these exceptions to its own
error vocabulary. ``MeshError`` means "this upload is not a mesh we can verify" and is the
uploader's problem; ``RayEngineUnavailable`` means the server is misconfigured and must fail
closed rather than fall back to trimesh's pure-Python ray tracer (minutes and gigabytes per mesh,
see shared/notes/mesh-verification.md).
"""

from __future__ import annotations

#: Every code ``MeshError`` can carry, with what it means. Kept here so the web layer and the docs
#: can enumerate them.
MESH_ERROR_CODES: dict[str, str] = {
    "empty": "the upload has no bytes",
    "truncated": "the file ends early or its length disagrees with its own header",
    "no_faces": "the file parsed but holds no triangles",
    "non_finite": "a vertex coordinate is NaN or infinite",
    "bad_index": "a face refers to a vertex that does not exist",
    "unknown_format": "the file type is not one of stl, obj, ply, off, 3mf",
    "format_mismatch": "the bytes do not look like the declared file type",
    "parse_error": "the parser rejected the file",
    "too_large": "the file, a decompressed member or the face count exceeds a configured limit",
    "zip_bomb": "a zip member's compression ratio exceeds the configured limit",
    "unsupported": "the file uses a feature this checker does not support",
    "bad_units": "the declared unit is not one of mm, cm, m, in",
}


class MeshError(Exception):
    """The uploaded bytes cannot be turned into a verifiable triangle mesh.

    ``code`` is a short machine-readable key (one of ``MESH_ERROR_CODES``); ``message`` is a
    sentence a user can act on.
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in MESH_ERROR_CODES:  # a programming error, not a user error
            raise ValueError(f"unknown MeshError code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


class RayEngineUnavailable(RuntimeError):
    """embreex (Embree) is missing or unusable; ray-based checks refuse to run without it."""
