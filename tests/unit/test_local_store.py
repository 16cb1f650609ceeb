"""LocalWriteOnceStore: write-once, retention, legal hold, integrity and key safety."""

from __future__ import annotations

import hashlib
import io
import json
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from pdm_records.storage import (
    InvalidKey,
    LocalWriteOnceStore,
    ObjectCorrupted,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    validate_key,
)

CONTENT = b"solid\nfacet normal 0 0 1\nendsolid\n"
RETAIN_UNTIL = datetime(2041, 6, 30, 12, 0, 0, 123456, tzinfo=UTC)
BEFORE_EXPIRY = RETAIN_UNTIL - timedelta(microseconds=1)
AFTER_EXPIRY = RETAIN_UNTIL + timedelta(days=1)
KEY = "cases/c-0001/files/mesh.stl"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> LocalWriteOnceStore:
    return LocalWriteOnceStore(tmp_path / "store")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(CONTENT)
    return path


def put(
    store: LocalWriteOnceStore,
    source: Path,
    key: str = KEY,
    *,
    retain_until: datetime = RETAIN_UNTIL,
    legal_hold: bool = False,
) -> str:
    data = source.read_bytes()
    info = store.put(
        key,
        source,
        sha256=sha256(data),
        size=len(data),
        media_type="model/stl",
        retain_until=retain_until,
        legal_hold=legal_hold,
    )
    assert info.version_id
    return info.version_id


def data_files(store: LocalWriteOnceStore) -> list[Path]:
    if not store.data_dir.exists():
        return []
    return [p for p in store.data_dir.rglob("*") if p.is_file()]


# -- round trip -------------------------------------------------------------------------------


def test_put_then_read_and_head_round_trip(store: LocalWriteOnceStore, source: Path) -> None:
    info = store.put(
        KEY, source, sha256=sha256(CONTENT), size=len(CONTENT), media_type="model/stl",
        retain_until=RETAIN_UNTIL,
    )

    assert info.key == KEY
    assert info.sha256 == sha256(CONTENT)
    assert info.size == len(CONTENT)
    assert info.legal_hold is False
    assert len(info.version_id or "") == 32

    assert store.read(KEY, version_id=info.version_id, sha256=sha256(CONTENT)) == CONTENT
    assert store.read(KEY, version_id=None, sha256=sha256(CONTENT)) == CONTENT

    head = store.head(KEY, version_id=info.version_id)
    assert head.version_id == info.version_id
    assert head.sha256 == sha256(CONTENT)
    assert head.size == len(CONTENT)
    assert head.retain_until == RETAIN_UNTIL
    assert head.retain_until is not None and head.retain_until.utcoffset() == timedelta(0)
    assert head.legal_hold is False
    assert head.lock_mode == "LOCAL"


def test_each_put_gets_a_fresh_version_id(store: LocalWriteOnceStore, source: Path) -> None:
    first = put(store, source, "a/one")
    second = put(store, source, "a/two")
    assert first != second


def test_copy_to_streams_content_and_returns_size(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    sink = io.BytesIO()

    size = store.copy_to(KEY, sink, version_id=version, sha256=sha256(CONTENT))

    assert size == len(CONTENT)
    assert sink.getvalue() == CONTENT


def test_data_file_is_read_only_after_put(store: LocalWriteOnceStore, source: Path) -> None:
    put(store, source)
    (data,) = data_files(store)
    assert data == store.data_dir / KEY
    assert stat.S_IMODE(data.stat().st_mode) == 0o444


def test_put_records_legal_hold(store: LocalWriteOnceStore, source: Path) -> None:
    put(store, source, legal_hold=True)
    assert store.head(KEY).legal_hold is True


def test_non_utc_retain_until_is_stored_as_the_same_instant(
    store: LocalWriteOnceStore, source: Path
) -> None:
    plus_two = datetime(2041, 6, 30, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    put(store, source, retain_until=plus_two)
    assert store.head(KEY).retain_until == datetime(2041, 6, 30, 12, 0, tzinfo=UTC)


# -- write once -------------------------------------------------------------------------------


def test_overwrite_is_refused_and_original_kept(
    store: LocalWriteOnceStore, source: Path, tmp_path: Path
) -> None:
    version = put(store, source)
    other = tmp_path / "other.bin"
    other.write_bytes(b"replacement")

    with pytest.raises(ObjectExists):
        store.put(KEY, other, sha256=sha256(b"replacement"), size=11, media_type="model/stl",
                  retain_until=RETAIN_UNTIL)

    assert store.read(KEY, version_id=version, sha256=sha256(CONTENT)) == CONTENT
    assert store.head(KEY).version_id == version
    assert list(store.iter_keys()) == [KEY]


# -- retention and legal hold -----------------------------------------------------------------


def test_delete_before_retain_until_is_refused(store: LocalWriteOnceStore, source: Path) -> None:
    version = put(store, source)

    with pytest.raises(RetentionViolation, match=r"retained until 2041-06-30T12:00:00\.123456Z"):
        store.delete(KEY, version_id=version, now=BEFORE_EXPIRY)

    assert store.read(KEY, version_id=version, sha256=sha256(CONTENT)) == CONTENT


def test_delete_after_retain_until_removes_object(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)

    store.delete(KEY, version_id=version, now=AFTER_EXPIRY)

    assert list(store.iter_keys()) == []
    assert data_files(store) == []
    with pytest.raises(ObjectNotFound):
        store.head(KEY)
    with pytest.raises(ObjectNotFound):
        store.read(KEY, version_id=None, sha256=sha256(CONTENT))


def test_delete_exactly_at_retain_until_is_allowed(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    store.delete(KEY, version_id=version, now=RETAIN_UNTIL)
    assert list(store.iter_keys()) == []


def test_legal_hold_blocks_delete_until_released(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    store.set_legal_hold(KEY, version_id=version, on=True)
    assert store.head(KEY).legal_hold is True

    with pytest.raises(RetentionViolation, match="legal hold"):
        store.delete(KEY, version_id=version, now=AFTER_EXPIRY)
    assert store.read(KEY, version_id=version, sha256=sha256(CONTENT)) == CONTENT

    store.set_legal_hold(KEY, version_id=version, on=False)
    assert store.head(KEY).legal_hold is False
    store.delete(KEY, version_id=version, now=AFTER_EXPIRY)
    assert list(store.iter_keys()) == []


def test_legal_hold_placed_at_put_blocks_delete(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source, legal_hold=True)
    with pytest.raises(RetentionViolation):
        store.delete(KEY, version_id=version, now=AFTER_EXPIRY)
    assert list(store.iter_keys()) == [KEY]


def test_extend_retention_moves_deadline_later(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    later = RETAIN_UNTIL + timedelta(days=365 * 5)

    store.extend_retention(KEY, version_id=version, retain_until=later)

    assert store.head(KEY).retain_until == later
    with pytest.raises(RetentionViolation):
        store.delete(KEY, version_id=version, now=AFTER_EXPIRY)
    assert store.read(KEY, version_id=version, sha256=sha256(CONTENT)) == CONTENT


def test_extend_retention_to_same_date_is_accepted(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    store.extend_retention(KEY, version_id=version, retain_until=RETAIN_UNTIL)
    assert store.head(KEY).retain_until == RETAIN_UNTIL


def test_shortening_retention_is_refused_with_message(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    earlier = datetime(2030, 1, 1, tzinfo=UTC)

    with pytest.raises(RetentionViolation) as excinfo:
        store.extend_retention(KEY, version_id=version, retain_until=earlier)

    message = str(excinfo.value)
    assert "can only be extended" in message
    assert "2041-06-30T12:00:00.123456Z" in message
    assert "2030-01-01T00:00:00.000000Z" in message
    assert store.head(KEY).retain_until == RETAIN_UNTIL


# -- integrity --------------------------------------------------------------------------------


def corrupt(store: LocalWriteOnceStore, key: str) -> None:
    data = store.data_dir / key
    data.chmod(0o644)
    data.write_bytes(CONTENT.replace(b"0 0 1", b"0 0 9"))
    data.chmod(0o444)


def test_corrupted_object_detected_on_read(store: LocalWriteOnceStore, source: Path) -> None:
    version = put(store, source)
    corrupt(store, KEY)

    with pytest.raises(ObjectCorrupted):
        store.read(KEY, version_id=version, sha256=sha256(CONTENT))


def test_corrupted_object_detected_by_copy_to(store: LocalWriteOnceStore, source: Path) -> None:
    version = put(store, source)
    corrupt(store, KEY)

    with pytest.raises(ObjectCorrupted):
        store.copy_to(KEY, io.BytesIO(), version_id=version, sha256=sha256(CONTENT))


def test_read_with_unexpected_sha256_is_refused(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    with pytest.raises(ObjectCorrupted):
        store.read(KEY, version_id=version, sha256=sha256(b"something else"))


def test_read_refused_when_store_record_disagrees_with_content(
    store: LocalWriteOnceStore, source: Path
) -> None:
    version = put(store, source)
    meta_path = store.meta_dir / (KEY + ".json")
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = sha256(b"what the store thinks it holds")
    meta_path.write_text(json.dumps(meta))

    with pytest.raises(ObjectCorrupted):
        store.read(KEY, version_id=version, sha256=sha256(CONTENT))


@pytest.mark.parametrize(
    ("digest", "size"),
    [
        (sha256(b"something else"), len(CONTENT)),
        (sha256(CONTENT), len(CONTENT) + 1),
    ],
    ids=["wrong-sha256", "wrong-size"],
)
def test_put_with_mismatching_sha256_or_size_stores_nothing(
    store: LocalWriteOnceStore, source: Path, digest: str, size: int
) -> None:
    with pytest.raises(ObjectCorrupted):
        store.put(KEY, source, sha256=digest, size=size, media_type="model/stl",
                  retain_until=RETAIN_UNTIL)

    assert list(store.iter_keys()) == []
    assert data_files(store) == []
    with pytest.raises(ObjectNotFound):
        store.head(KEY)
    # The key is still free: a correct put afterwards succeeds.
    put(store, source)
    assert list(store.iter_keys()) == [KEY]


# -- lookups ----------------------------------------------------------------------------------


def test_missing_object_is_not_found(store: LocalWriteOnceStore) -> None:
    with pytest.raises(ObjectNotFound):
        store.read("cases/nothing", version_id=None, sha256=sha256(b""))
    with pytest.raises(ObjectNotFound):
        store.head("cases/nothing")
    with pytest.raises(ObjectNotFound):
        store.delete("cases/nothing", version_id=None, now=AFTER_EXPIRY)


def test_wrong_version_id_is_not_found(store: LocalWriteOnceStore, source: Path) -> None:
    version = put(store, source)
    wrong = "0" * 32
    assert wrong != version

    with pytest.raises(ObjectNotFound):
        store.read(KEY, version_id=wrong, sha256=sha256(CONTENT))
    with pytest.raises(ObjectNotFound):
        store.head(KEY, version_id=wrong)
    with pytest.raises(ObjectNotFound):
        store.set_legal_hold(KEY, version_id=wrong, on=True)
    with pytest.raises(ObjectNotFound):
        store.extend_retention(KEY, version_id=wrong, retain_until=AFTER_EXPIRY)
    with pytest.raises(ObjectNotFound):
        store.delete(KEY, version_id=wrong, now=AFTER_EXPIRY)
    assert store.head(KEY).legal_hold is False
    assert list(store.iter_keys()) == [KEY]


def test_iter_keys_lists_keys_by_prefix(store: LocalWriteOnceStore, source: Path) -> None:
    for key in ("cases/c-2/b.stl", "cases/c-1/a.stl", "audit/export.pdf"):
        put(store, source, key)

    assert list(store.iter_keys()) == ["audit/export.pdf", "cases/c-1/a.stl", "cases/c-2/b.stl"]
    assert list(store.iter_keys("cases/")) == ["cases/c-1/a.stl", "cases/c-2/b.stl"]
    assert list(store.iter_keys("cases/c-1/")) == ["cases/c-1/a.stl"]
    assert list(store.iter_keys("nothing/")) == []


def test_iter_keys_on_fresh_store_is_empty(store: LocalWriteOnceStore) -> None:
    assert list(store.iter_keys()) == []


# -- key safety -------------------------------------------------------------------------------

UNSAFE_KEYS = [
    "../x",
    "a/../../etc/passwd",
    "/abs",
    ".hidden",
    "a//b",
    "a\\b",
    "",
    "a/./b",
    "x" * 600,
    "nul\x00byte",
    "space name",
    "a/",
    "a/..",
    "-leading-dash",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS, ids=lambda k: repr(k)[:40])
def test_unsafe_keys_are_refused(
    store: LocalWriteOnceStore, source: Path, tmp_path: Path, key: str
) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)
    with pytest.raises(InvalidKey):
        store.put(key, source, sha256=sha256(CONTENT), size=len(CONTENT),
                  media_type="model/stl", retain_until=RETAIN_UNTIL)
    with pytest.raises(InvalidKey):
        store.read(key, version_id=None, sha256=sha256(CONTENT))
    with pytest.raises(InvalidKey):
        store.head(key)
    with pytest.raises(InvalidKey):
        store.delete(key, version_id=None, now=AFTER_EXPIRY)

    # Nothing was written anywhere: the store root was never even created.
    assert not store.root.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["upload.bin"]


@pytest.mark.parametrize(
    "key", ["a", "cases/C-0001/files/3f2a.stl", "x" * 128, "a.b_c-d/e..f", "v1.2/x"]
)
def test_safe_keys_are_accepted(key: str) -> None:
    assert validate_key(key) == key


# -- health check -----------------------------------------------------------------------------


def test_check_on_writable_folder_reports_nothing(store: LocalWriteOnceStore) -> None:
    assert store.check() == []
    assert store.data_dir.is_dir()
    # The write probe leaves nothing behind.
    assert list(store.data_dir.iterdir()) == []


def test_check_reports_root_that_is_a_file(tmp_path: Path) -> None:
    root = tmp_path / "not-a-folder"
    root.write_text("oops")
    store = LocalWriteOnceStore(root)

    problems = store.check()

    assert len(problems) == 1
    assert "not writable" in problems[0]
    assert str(root) in problems[0]


def test_naive_datetimes_are_taken_as_utc(tmp_path: Path) -> None:
    from datetime import datetime as dt

    store = LocalWriteOnceStore(tmp_path / "store")
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc")
    digest = hashlib.sha256(b"abc").hexdigest()
    store.put("k/naive", src, sha256=digest, size=3, media_type="x/y",
              retain_until=dt(2030, 1, 1))
    with pytest.raises(RetentionViolation):
        store.extend_retention("k/naive", version_id=None, retain_until=dt(2029, 1, 1))
    with pytest.raises(RetentionViolation):
        store.delete("k/naive", version_id=None, now=dt(2029, 12, 31))
    store.delete("k/naive", version_id=None, now=dt(2030, 1, 2))
    assert list(store.iter_keys()) == []


def test_iter_keys_also_lists_a_data_file_without_metadata(
    store: LocalWriteOnceStore, source: Path
) -> None:
    """A put interrupted between the data and the metadata write leaves a data file only: it
    must still be listed, or reconciliation could not find the orphan."""
    put(store, source)
    stray = store.data_dir / "draft" / "2026" / "stray"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half-written")
    assert list(store.iter_keys()) == [KEY, "draft/2026/stray"]
    with pytest.raises(ObjectNotFound):
        store.head("draft/2026/stray")


def test_quarantine_rebuilds_metadata_and_only_extends(
    store: LocalWriteOnceStore, source: Path
) -> None:
    stray = store.data_dir / "draft" / "stray"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"half-written")
    now = datetime.now(UTC)
    info = store.quarantine("draft/stray", version_id=None, reason="orphan", found_at=now,
                            retain_until=now + timedelta(days=30))
    assert info.sha256 == sha256(b"half-written") and info.size == len(b"half-written")
    assert info.version_id and info.retain_until == now + timedelta(days=30)
    meta = json.loads((store.meta_dir / "draft" / "stray.json").read_text())
    assert meta["quarantine"]["reason"] == "orphan"
    # an existing longer lock is kept
    put(store, source)
    info = store.quarantine(KEY, version_id=None, reason="orphan", found_at=now,
                            retain_until=now + timedelta(days=1))
    assert info.retain_until == RETAIN_UNTIL
