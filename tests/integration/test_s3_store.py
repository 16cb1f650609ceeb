"""S3ObjectLockStore against a REAL S3 server that enforces Object Lock (never moto).

The server is the throw-away Ceph RADOS Gateway of ``scripts/s3-test-server``::

    eval "$(scripts/s3-test-server start)"
    PDM_TEST_S3_ENDPOINT_URL=$PDM_S3_ENDPOINT_URL .venv/bin/python -m pytest \
        tests/integration/test_s3_store.py -q
    scripts/s3-test-server stop

Without ``PDM_TEST_S3_ENDPOINT_URL`` every test is skipped (CI sets ``PDM_FAIL_ON_SKIP=1`` and
starts the server). Each test works in its own new bucket; locked objects cannot be deleted, so
buckets are left behind on the throw-away server. Retention is minutes at most, except for the
expiry tests, which use a few seconds and poll for the condition with a bound.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from pdm_records.storage import make_store
from pdm_records.storage.base import (
    ObjectCorrupted,
    ObjectExists,
    ObjectNotFound,
    RetentionViolation,
    StorageError,
    StorageUnavailable,
)
from pdm_records.storage.s3 import S3ObjectLockStore, build_client, create_bucket

pytestmark = pytest.mark.s3

MIB = 1024 * 1024
EXPIRY_BOUND_S = 30.0


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL")
    if not endpoint:
        pytest.skip(
            "PDM_TEST_S3_ENDPOINT_URL is not set: start the Object Lock test server with "
            '`eval "$(scripts/s3-test-server start)"` and export '
            "PDM_TEST_S3_ENDPOINT_URL=$PDM_S3_ENDPOINT_URL"
        )
    return endpoint


@pytest.fixture(scope="module")
def region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@pytest.fixture(scope="module")
def client(s3_endpoint: str, region: str) -> Any:
    return build_client(s3_endpoint, region)


@pytest.fixture()
def bucket(client: Any, region: str) -> str:
    name = f"pdm-test-{uuid.uuid4().hex[:16]}"
    create_bucket(client, name, region)
    return name


@pytest.fixture()
def make(s3_endpoint: str, region: str, bucket: str) -> Callable[..., S3ObjectLockStore]:
    def factory(**kwargs: Any) -> S3ObjectLockStore:
        kwargs.setdefault("bucket", bucket)
        kwargs.setdefault("lock_mode", "COMPLIANCE")
        return S3ObjectLockStore(endpoint_url=s3_endpoint, region=region, **kwargs)

    return factory


@pytest.fixture()
def store(make: Callable[..., S3ObjectLockStore]) -> S3ObjectLockStore:
    return make()


@pytest.fixture()
def sample(tmp_path: Path) -> Iterator[Callable[[bytes], tuple[Path, str]]]:
    def write(data: bytes) -> tuple[Path, str]:
        path = tmp_path / f"src-{uuid.uuid4().hex}"
        path.write_bytes(data)
        return path, hashlib.sha256(data).hexdigest()

    yield write


def _put(
    store: S3ObjectLockStore,
    key: str,
    path: Path,
    sha: str,
    *,
    seconds: float = 300,
    legal_hold: bool = False,
) -> Any:
    return store.put(
        key,
        path,
        sha256=sha,
        size=path.stat().st_size,
        media_type="application/octet-stream",
        retain_until=datetime.now(UTC) + timedelta(seconds=seconds),
        legal_hold=legal_hold,
    )


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code"))


def _poll(condition: Callable[[], bool], what: str, bound: float = EXPIRY_BOUND_S) -> float:
    """Call ``condition`` until it is true; fail after ``bound`` seconds. Returns elapsed s."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > bound:
            pytest.fail(f"{what}: still not true after {bound:.0f} s")
        time.sleep(0.25)
    return time.monotonic() - start


def _deleted(store: S3ObjectLockStore, key: str, version_id: str) -> Callable[[], bool]:
    def attempt() -> bool:
        try:
            store.delete(key, version_id=version_id, now=datetime.now(UTC))
        except RetentionViolation:
            return False
        return True

    return attempt


# ---------------------------------------------------------------------------------------------


def test_put_read_round_trip_with_version_and_sha256(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    data = b"design iteration 1\n" * 1000
    path, sha = sample(data)
    requested = datetime.now(UTC) + timedelta(minutes=5)
    info = store.put(
        "req/1/iter/1/part.stl",
        path,
        sha256=sha,
        size=len(data),
        media_type="model/stl",
        retain_until=requested,
    )
    assert info.version_id and info.version_id != "null"
    assert info.lock_mode == "COMPLIANCE"
    assert info.retain_until is not None and info.retain_until >= requested

    head = store.head("req/1/iter/1/part.stl", version_id=info.version_id)
    assert head.version_id == info.version_id
    assert head.size == len(data)
    assert head.sha256 == sha
    assert head.lock_mode == "COMPLIANCE"
    assert head.retain_until is not None and head.retain_until >= requested
    assert head.legal_hold is False

    # what the server itself says (not the adapter)
    raw = client.head_object(Bucket=store.bucket, Key="req/1/iter/1/part.stl")
    assert raw["Metadata"]["sha256"] == sha
    assert raw["VersionId"] == info.version_id

    assert store.read("req/1/iter/1/part.stl", version_id=info.version_id, sha256=sha) == data
    with (path.parent / "copy").open("wb") as dest:
        assert store.copy_to("req/1/iter/1/part.stl", dest, version_id=None, sha256=sha) == len(
            data
        )
    assert (path.parent / "copy").read_bytes() == data
    assert list(store.iter_keys("req/1/")) == ["req/1/iter/1/part.stl"]
    assert store.check() == []

    with pytest.raises(ObjectNotFound):
        store.head("req/1/missing.stl")
    with pytest.raises(ObjectNotFound):
        store.read("req/1/missing.stl", version_id=None, sha256=sha)


def test_overwrite_is_refused_even_under_a_delete_marker(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"first")
    info = _put(store, "a/object.bin", path, sha)
    other, other_sha = sample(b"second")
    with pytest.raises(ObjectExists):
        _put(store, "a/object.bin", other, other_sha)

    # a delete without VersionId only hides the locked version behind a delete marker
    client.delete_object(Bucket=store.bucket, Key="a/object.bin")
    with pytest.raises(ObjectExists):
        _put(store, "a/object.bin", other, other_sha)

    versions = client.list_object_versions(Bucket=store.bucket, Prefix="a/object.bin")
    assert [v["VersionId"] for v in versions.get("Versions", [])] == [info.version_id]
    assert store.read("a/object.bin", version_id=info.version_id, sha256=sha) == b"first"
    assert list(store.iter_keys()) == ["a/object.bin"]


def test_put_refuses_a_file_that_does_not_match_and_a_past_date(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"content")
    with pytest.raises(ObjectCorrupted):
        store.put("b/x.bin", path, sha256="0" * 64, size=7, media_type="x/y",
                  retain_until=datetime.now(UTC) + timedelta(minutes=1))
    with pytest.raises(RetentionViolation):
        store.put("b/x.bin", path, sha256=sha, size=7, media_type="x/y",
                  retain_until=datetime.now(UTC) - timedelta(days=1))
    assert "Versions" not in client.list_object_versions(Bucket=store.bucket, Prefix="b/")


def test_locked_version_delete_refused_by_application_and_by_server(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"locked record")
    info = _put(store, "c/locked.bin", path, sha)

    with pytest.raises(RetentionViolation, match="retained until"):
        store.delete("c/locked.bin", version_id=info.version_id, now=datetime.now(UTC))

    # the server refuses on its own, with and without a governance bypass
    for extra in ({}, {"BypassGovernanceRetention": True}):
        with pytest.raises(ClientError) as caught:
            client.delete_object(
                Bucket=store.bucket, Key="c/locked.bin", VersionId=info.version_id, **extra
            )
        assert _error_code(caught.value) == "AccessDenied"

    # even when the application is told it is later (wrong clock), the server refuses
    with pytest.raises(RetentionViolation, match="refused"):
        store.delete(
            "c/locked.bin", version_id=info.version_id, now=datetime.now(UTC) + timedelta(days=1)
        )
    assert store.read("c/locked.bin", version_id=info.version_id, sha256=sha) == b"locked record"


def test_retention_cannot_be_shortened_and_extension_is_read_back(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"retained")
    info = _put(store, "d/ret.bin", path, sha, seconds=120)
    assert info.retain_until is not None

    with pytest.raises(RetentionViolation, match="only be extended"):
        store.extend_retention(
            "d/ret.bin", version_id=info.version_id,
            retain_until=info.retain_until - timedelta(seconds=30),
        )
    # the server refuses shortening as well
    with pytest.raises(ClientError) as caught:
        client.put_object_retention(
            Bucket=store.bucket, Key="d/ret.bin", VersionId=info.version_id,
            Retention={"Mode": "COMPLIANCE",
                       "RetainUntilDate": info.retain_until - timedelta(seconds=30)},
        )
    assert _error_code(caught.value) == "AccessDenied"

    later = info.retain_until + timedelta(minutes=2, microseconds=500)
    store.extend_retention("d/ret.bin", version_id=info.version_id, retain_until=later)
    head = store.head("d/ret.bin", version_id=info.version_id)
    assert head.retain_until is not None and head.retain_until >= later
    assert head.retain_until - later < timedelta(seconds=1)
    assert head.lock_mode == "COMPLIANCE"
    retention = client.get_object_retention(
        Bucket=store.bucket, Key="d/ret.bin", VersionId=info.version_id
    )["Retention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"] >= later


def test_short_retention_becomes_deletable_after_expiry(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"short-lived")
    info = _put(store, "e/short.bin", path, sha, seconds=2)
    assert info.retain_until is not None
    with pytest.raises(RetentionViolation):
        store.delete("e/short.bin", version_id=info.version_id, now=datetime.now(UTC))

    _poll(_deleted(store, "e/short.bin", info.version_id), "expired COMPLIANCE version deletable")
    assert datetime.now(UTC) >= info.retain_until
    with pytest.raises(ObjectNotFound):
        store.head("e/short.bin", version_id=info.version_id)
    assert "Versions" not in client.list_object_versions(Bucket=store.bucket, Prefix="e/")


def test_legal_hold_blocks_delete_even_after_expiry(
    store: S3ObjectLockStore, client: Any, sample: Any
) -> None:
    path, sha = sample(b"held")
    info = _put(store, "f/held.bin", path, sha, seconds=2, legal_hold=True)
    assert store.head("f/held.bin", version_id=info.version_id).legal_hold is True

    # wait until the retention itself has expired by the server's clock (probe: a twin object
    # with the same retain-until and no hold becomes deletable)
    twin = _put(store, "f/twin.bin", path, sha, seconds=2)
    _poll(_deleted(store, "f/twin.bin", twin.version_id), "expired twin deletable")

    with pytest.raises(RetentionViolation, match="legal hold"):
        store.delete("f/held.bin", version_id=info.version_id, now=datetime.now(UTC))
    with pytest.raises(ClientError) as caught:
        client.delete_object(
            Bucket=store.bucket, Key="f/held.bin", VersionId=info.version_id,
            BypassGovernanceRetention=True,
        )
    assert _error_code(caught.value) == "AccessDenied"

    store.set_legal_hold("f/held.bin", version_id=info.version_id, on=False)
    assert store.head("f/held.bin", version_id=info.version_id).legal_hold is False
    store.delete("f/held.bin", version_id=info.version_id, now=datetime.now(UTC))
    with pytest.raises(ObjectNotFound):
        store.head("f/held.bin", version_id=info.version_id)


def test_governance_bypass_only_when_configured(
    make: Callable[..., S3ObjectLockStore], sample: Any
) -> None:
    governance = make(lock_mode="GOVERNANCE")  # bypass not configured (the default)
    bypassing = make(lock_mode="GOVERNANCE", governance_bypass=True)
    compliance = make(lock_mode="COMPLIANCE", governance_bypass=True)  # ignored in COMPLIANCE
    assert compliance.governance_bypass is False
    path, sha = sample(b"governed")
    later = datetime.now(UTC) + timedelta(days=1)  # the application believes retention is over

    g1 = _put(governance, "g/one.bin", path, sha, seconds=600)
    assert governance.head("g/one.bin").lock_mode == "GOVERNANCE"
    with pytest.raises(RetentionViolation):  # application check, before the server is asked
        governance.delete("g/one.bin", version_id=g1.version_id, now=datetime.now(UTC))
    # without the setting no bypass header is sent: the server keeps the GOVERNANCE lock
    with pytest.raises(RetentionViolation, match="refused"):
        governance.delete("g/one.bin", version_id=g1.version_id, now=later)
    with pytest.raises(RetentionViolation, match="refused"):
        compliance.delete("g/one.bin", version_id=g1.version_id, now=later)
    assert governance.head("g/one.bin", version_id=g1.version_id).version_id == g1.version_id
    # configured (PDM_S3_GOVERNANCE_BYPASS): the server lets the GOVERNANCE version go
    bypassing.delete("g/one.bin", version_id=g1.version_id, now=later)
    with pytest.raises(ObjectNotFound):
        governance.head("g/one.bin", version_id=g1.version_id)

    # a bypass cannot remove a COMPLIANCE lock
    c1 = _put(compliance, "g/two.bin", path, sha, seconds=600)
    with pytest.raises(RetentionViolation):
        bypassing.delete("g/two.bin", version_id=c1.version_id, now=later)
    assert governance.head("g/two.bin").lock_mode == "COMPLIANCE"


def test_extend_retention_upgrades_governance_to_compliance(
    make: Callable[..., S3ObjectLockStore], client: Any, sample: Any
) -> None:
    governance = make(lock_mode="GOVERNANCE")
    compliance = make(lock_mode="COMPLIANCE")
    path, sha = sample(b"upgraded")
    info = _put(governance, "u/one.bin", path, sha, seconds=20)
    assert info.retain_until is not None
    # same deadline, stronger mode: not a no-op
    compliance.extend_retention("u/one.bin", version_id=info.version_id,
                                retain_until=info.retain_until)
    retention = client.get_object_retention(
        Bucket=compliance.bucket, Key="u/one.bin", VersionId=info.version_id)["Retention"]
    assert retention["Mode"] == "COMPLIANCE" and retention["RetainUntilDate"] >= info.retain_until
    # and now even a bypass cannot remove it
    with pytest.raises(ClientError) as caught:
        client.delete_object(Bucket=compliance.bucket, Key="u/one.bin",
                             VersionId=info.version_id, BypassGovernanceRetention=True)
    assert _error_code(caught.value) == "AccessDenied"
    # a GOVERNANCE store extending a GOVERNANCE version keeps the mode
    other = _put(governance, "u/two.bin", path, sha, seconds=20)
    governance.extend_retention("u/two.bin", version_id=other.version_id,
                                retain_until=datetime.now(UTC) + timedelta(seconds=40))
    assert governance.head("u/two.bin").lock_mode == "GOVERNANCE"


def test_multipart_upload_keeps_the_lock(
    make: Callable[..., S3ObjectLockStore], client: Any, sample: Any
) -> None:
    store = make(multipart_threshold=5 * MIB, part_size=5 * MIB)
    data = os.urandom(12 * MIB)
    path, sha = sample(data)
    info = _put(store, "h/big.bin", path, sha, seconds=300, legal_hold=True)

    head = client.head_object(Bucket=store.bucket, Key="h/big.bin", VersionId=info.version_id)
    assert head["ETag"].strip('"').endswith("-3")  # really went up in 3 parts
    assert head["ContentLength"] == len(data)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert head["ObjectLockLegalHoldStatus"] == "ON"
    retention = client.get_object_retention(
        Bucket=store.bucket, Key="h/big.bin", VersionId=info.version_id
    )["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert info.retain_until is not None and retention["RetainUntilDate"] >= info.retain_until
    with pytest.raises(ClientError) as caught:
        client.delete_object(Bucket=store.bucket, Key="h/big.bin", VersionId=info.version_id)
    assert _error_code(caught.value) == "AccessDenied"
    assert store.read("h/big.bin", version_id=info.version_id, sha256=sha) == data
    assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []


def test_multipart_upload_is_aborted_on_mismatch(
    make: Callable[..., S3ObjectLockStore], client: Any, sample: Any
) -> None:
    store = make(multipart_threshold=5 * MIB, part_size=5 * MIB)
    path, _ = sample(os.urandom(6 * MIB))
    with pytest.raises(ObjectCorrupted):
        store.put("i/bad.bin", path, sha256="0" * 64, size=6 * MIB, media_type="x/y",
                  retain_until=datetime.now(UTC) + timedelta(minutes=1))
    assert client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    assert "Versions" not in client.list_object_versions(Bucket=store.bucket, Prefix="i/")


def test_wrong_expected_sha256_raises_object_corrupted(
    store: S3ObjectLockStore, sample: Any
) -> None:
    """Corruption cannot be injected on S3: a locked version cannot be altered or replaced (that
    is the point of Object Lock), so stored bytes can never differ from what was put. What can be
    shown against the real server is that ``read``/``copy_to`` verify the SHA-256 the *caller*
    expects (from the database record) on every read and refuse a mismatch."""
    path, sha = sample(b"genuine bytes")
    info = _put(store, "j/obj.bin", path, sha)
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ObjectCorrupted):
        store.read("j/obj.bin", version_id=info.version_id, sha256=wrong)
    with (path.parent / "out").open("wb") as dest, pytest.raises(ObjectCorrupted):
        store.copy_to("j/obj.bin", dest, version_id=info.version_id, sha256=wrong)


def test_check_reports_bucket_without_object_lock_and_missing_bucket(
    client: Any, make: Callable[..., S3ObjectLockStore], sample: Any
) -> None:
    plain = f"pdm-test-plain-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=plain)
    store = make(bucket=plain)
    problems = store.check()
    assert any("Object Lock is not enabled" in p for p in problems), problems
    assert any("versioning is not enabled" in p for p in problems), problems
    # and a put there does not silently store an unprotected record
    path, sha = sample(b"x")
    with pytest.raises(StorageError):
        _put(store, "k/x.bin", path, sha)

    missing = make(bucket=f"pdm-test-missing-{uuid.uuid4().hex[:12]}")
    problems = missing.check()
    assert len(problems) == 1 and "does not exist" in problems[0] and "create" in problems[0]


def test_storage_down_is_storage_unavailable(s3_endpoint: str, sample: Any) -> None:
    """Same credentials as the real server, but nothing listens on the endpoint."""
    store = S3ObjectLockStore(
        bucket="pdm-down", endpoint_url="http://127.0.0.1:1", region="us-east-1"
    )
    path, sha = sample(b"x")
    with pytest.raises(StorageUnavailable, match="unreachable"):
        _put(store, "l/x.bin", path, sha)
    problems = store.check()
    assert len(problems) == 1 and "cannot be reached" in problems[0]


def test_make_store_builds_the_s3_backend(
    s3_endpoint: str, region: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    store = make_store({
        "PDM_STORAGE_BACKEND": "s3",
        "PDM_S3_BUCKET": bucket,
        "PDM_S3_ENDPOINT_URL": None,  # falls back to AWS_ENDPOINT_URL
        "PDM_S3_REGION": region,
        "PDM_S3_LOCK_MODE": "GOVERNANCE",
        "PDM_S3_SSE": None,
        "PDM_S3_GOVERNANCE_BYPASS": True,
    })
    assert isinstance(store, S3ObjectLockStore)
    assert store.name == "s3" and store.lock_mode == "GOVERNANCE" and store.governance_bypass
    assert store.endpoint_url == s3_endpoint
    assert store.check() == []


def test_create_bucket_command_and_doctor_on_s3(s3_endpoint: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`pdm create-bucket` makes a correctly locked bucket that `pdm doctor` accepts."""
    import uuid as _uuid

    from pdm_records import create_app

    bucket = f"pdm-cli-{_uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path))
    app = create_app({"PDM_STORAGE_BACKEND": "s3", "PDM_S3_BUCKET": bucket,
                      "PDM_S3_ENDPOINT_URL": s3_endpoint,
                      "PDM_S3_REGION": "us-east-1",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    runner = app.test_cli_runner()
    created = runner.invoke(args=["pdm", "create-bucket"])
    assert created.exit_code == 0, created.output
    assert "Object Lock and versioning enabled" in created.output
    doctor = runner.invoke(args=["pdm", "doctor"])
    assert "[ok  ] object store: s3 backend ready" in doctor.output, doctor.output


def test_extending_to_the_unrounded_deadline_put_was_given_is_accepted(
    store: S3ObjectLockStore, sample: Any
) -> None:
    """put() rounds retain-until up to the server's whole seconds; asking again for the exact,
    unrounded deadline (as the database holds it) is not a shortening."""
    path, sha = sample(b"rounding")
    requested = datetime.now(UTC).replace(microsecond=123456) + timedelta(seconds=300)
    info = store.put("r/round.bin", path, sha256=sha, size=path.stat().st_size,
                     media_type="application/octet-stream", retain_until=requested)
    store.extend_retention("r/round.bin", version_id=info.version_id, retain_until=requested)
    store.extend_retention("r/round.bin", version_id=info.version_id,
                           retain_until=requested + timedelta(milliseconds=400))
    head = store.head("r/round.bin", version_id=info.version_id)
    assert head.retain_until is not None and head.retain_until >= requested
