"""Hostile uploads: spooling with a size cap while hashing, and safe display names."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from pdm_records.storage.uploads import (
    EmptyUpload,
    UploadTooLarge,
    clean_display_name,
    spool,
)


def test_spool_hashes_content_and_records_size(tmp_path: Path) -> None:
    # Bigger than one read chunk (1 MiB), so the hash must be accumulated across chunks.
    content = bytes(range(256)) * 5000

    with spool(io.BytesIO(content), max_bytes=len(content), original_name="mesh.stl",
               tmp_dir=str(tmp_path)) as upload:
        assert upload.sha256 == hashlib.sha256(content).hexdigest()
        assert upload.size == len(content)
        assert upload.original_name == "mesh.stl"
        assert upload.path.parent == tmp_path
        assert upload.path.read_bytes() == content


def test_spool_removes_temp_file_after_the_block(tmp_path: Path) -> None:
    with spool(io.BytesIO(b"abc"), max_bytes=10, original_name=None,
               tmp_dir=str(tmp_path)) as upload:
        assert upload.path.exists()
        assert list(tmp_path.iterdir()) == [upload.path]

    assert not upload.path.exists()
    assert list(tmp_path.iterdir()) == []


def test_spool_removes_temp_file_when_the_block_raises(tmp_path: Path) -> None:
    with (
        pytest.raises(RuntimeError, match="caller rejected"),
        spool(io.BytesIO(b"abc"), max_bytes=10, original_name=None, tmp_dir=str(tmp_path)),
    ):
        raise RuntimeError("caller rejected the mesh")

    assert list(tmp_path.iterdir()) == []


def test_spool_accepts_exactly_max_bytes(tmp_path: Path) -> None:
    with spool(io.BytesIO(b"x" * 64), max_bytes=64, original_name=None,
               tmp_dir=str(tmp_path)) as upload:
        assert upload.size == 64


def test_spool_refuses_more_than_max_bytes_and_removes_temp_file(tmp_path: Path) -> None:
    limit = 3 * 1024 * 1024
    with (
        pytest.raises(UploadTooLarge, match="limit of 3 MiB") as excinfo,
        spool(io.BytesIO(b"x" * (limit + 1)), max_bytes=limit, original_name="big.stl",
              tmp_dir=str(tmp_path)),
    ):
        pytest.fail("the block must not run for an oversized upload")

    assert excinfo.value.limit == limit
    assert list(tmp_path.iterdir()) == []


def test_spool_refuses_empty_upload_and_removes_temp_file(tmp_path: Path) -> None:
    with (
        pytest.raises(EmptyUpload, match="empty"),
        spool(io.BytesIO(b""), max_bytes=10, original_name="empty.stl", tmp_dir=str(tmp_path)),
    ):
        pytest.fail("the block must not run for an empty upload")

    assert list(tmp_path.iterdir()) == []


def test_spool_cleans_the_original_name(tmp_path: Path) -> None:
    with spool(io.BytesIO(b"abc"), max_bytes=10, original_name="../../etc/passwd",
               tmp_dir=str(tmp_path)) as upload:
        assert upload.original_name == "passwd"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\x\\evil.stl", "evil.stl"),
        ("sku\x00ll\x1b[31m.stl", "skull[31m.stl"),
        ("tab\tnew\nline\r.stl", "tabnewline.stl"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),
        ("a\u2066b\u2069c\u200f.stl", "abc.stl"),
        ("", "upload"),
        (None, "upload"),
        ("   ", "upload"),
        ("..", "upload"),
        ("dir/", "upload"),
        ("\x00\x01", "upload"),
        ("Schädel_Ø.stl", "Schädel_Ø.stl"),
        ("  padded name.stl  ", "padded name.stl"),
        ("<script>alert(1)</script>.stl", "script>.stl"),
    ],
)
def test_clean_display_name(raw: str | None, expected: str) -> None:
    assert clean_display_name(raw) == expected


def test_clean_display_name_uses_given_fallback() -> None:
    assert clean_display_name("", fallback="mesh") == "mesh"


def test_clean_display_name_truncates_to_255_characters_keeping_the_extension() -> None:
    name = "a" * 296 + ".stl"
    assert len(name) == 300

    cleaned = clean_display_name(name)

    assert len(cleaned) == 255
    assert cleaned == "a" * 251 + ".stl"  # the type is judged by the extension
    assert clean_display_name("b" * 300) == "b" * 255  # no extension: a plain cut
