"""Hostile uploads: stream to a temporary file with a size cap while hashing (STYLE §5).

Nothing reaches the object store before the spooled file has been validated by its caller.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

CHUNK = 1024 * 1024


class UploadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than the limit of {limit // (1024 * 1024)} MiB")
        self.limit = limit


class EmptyUpload(Exception):
    def __init__(self) -> None:
        super().__init__("the file is empty")


@dataclass(frozen=True)
class SpooledUpload:
    path: Path
    sha256: str
    size: int
    original_name: str


def clean_display_name(name: str | None, fallback: str = "upload") -> str:
    """The original file name for display: base name only, no control characters, ≤ 255 chars.

    It is shown (escaped) and exported, never used as a storage key or a path.
    """
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    if name in {"", ".", ".."}:
        return fallback
    if len(name) > 255:
        # Keep the extension: the file's type is judged by it (a cut name would be refused).
        stem, dot, ext = name.rpartition(".")
        keep = dot and 0 < len(ext) <= 16
        name = f"{stem[:254 - len(ext)]}.{ext}" if keep else name[:255]
    return name


@contextlib.contextmanager
def spool(
    stream: IO[bytes], *, max_bytes: int, original_name: str | None, tmp_dir: str | None = None
) -> Iterator[SpooledUpload]:
    """Copy ``stream`` to a temporary file (deleted on exit), hashing, refusing > ``max_bytes``."""
    fd, tmp = tempfile.mkstemp(prefix="pdm-upload-", dir=tmp_dir)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise EmptyUpload()
        yield SpooledUpload(Path(tmp), digest.hexdigest(), size, clean_display_name(original_name))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
