"""``pdm reconcile`` / ``pdm verify-storage`` against the REAL Ceph RGW (never moto).

A locked S3 version cannot be altered (that is the point), so the discrepancies injected here are
the ones a real deployment can have: an object put without any row (an orphan: a crash between the
put and the commit), objects whose lock is missing, shorter or in a weaker mode than the row
says (a multipart upload whose lock re-apply failed, a GOVERNANCE object in a COMPLIANCE store),
and a row whose object is not in the bucket. Each test works in its own new bucket; retention is
seconds to minutes, except the 30-day floor a quarantined draft orphan gets (a few bytes).
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import (
    AuditEvent,
    DamagedRecord,
    FileState,
    QuarantinedObject,
    StoredFile,
)
from pdm_records.storage.s3 import S3ObjectLockStore, build_client, create_bucket

pytestmark = pytest.mark.s3
REGION = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL")
    if not endpoint:
        pytest.skip("PDM_TEST_S3_ENDPOINT_URL is not set: start the Object Lock test server "
                    '(`eval "$(scripts/s3-test-server start)"`) and export it')
    return endpoint


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"pdm-test-rec-{uuid.uuid4().hex[:12]}"
    create_bucket(build_client(s3_endpoint, REGION), name, REGION)
    return name


@pytest.fixture
def config_overrides(s3_endpoint: str, bucket: str) -> dict[str, Any]:
    return {"PDM_STORAGE_BACKEND": "s3", "PDM_S3_BUCKET": bucket,
            "PDM_S3_ENDPOINT_URL": s3_endpoint, "PDM_S3_REGION": REGION,
            "PDM_S3_LOCK_MODE": "COMPLIANCE"}


@pytest.fixture
def store(s3_endpoint: str, bucket: str) -> S3ObjectLockStore:
    return S3ObjectLockStore(bucket, s3_endpoint, REGION, lock_mode="COMPLIANCE")


def _run(app: Flask, *args: str) -> tuple[int, dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["pdm", *args, "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def _row(app: Flask, key: str, version_id: str | None, data: bytes,
         retain_until: datetime) -> int:
    with app.app_context():
        row = StoredFile(backend="s3", key=key, version_id=version_id,
                         sha256=hashlib.sha256(data).hexdigest(), size=len(data),
                         media_type="application/octet-stream", original_name="x.bin",
                         state=FileState.RECORD, retain_until=retain_until)
        db.session.add(row)
        db.session.commit()
        return row.id


def _put(store: S3ObjectLockStore, key: str, data: bytes, **lock: Any) -> str:
    """Put directly with boto3 (as a crashed or foreign writer would), return the version."""
    resp = store.client.put_object(Bucket=store.bucket, Key=key, Body=data,
                                   Metadata={"sha256": hashlib.sha256(data).hexdigest()},
                                   **lock)
    return str(resp["VersionId"])


def test_reconcile_quarantines_an_injected_orphan(app: Flask, store: S3ObjectLockStore) -> None:
    key = "draft/2026/12/orphan-" + uuid.uuid4().hex
    body = b"an object nobody indexes"
    version = _put(store, key, body)  # no lock at all
    code, report = _run(app, "reconcile")
    assert code == 1
    assert [(f["kind"], f["key"], f["version_id"]) for f in report["findings"]] == [
        ("orphan", key, version)]
    assert report["findings"][0]["lock_mode"] is None

    code, report = _run(app, "reconcile", "--repair")
    assert code == 0 and report["repaired"] == 1
    # marked in the bucket itself …
    tags = store.tags(key, version_id=version)
    assert tags["pdm-quarantine"].startswith("orphan") and tags["pdm-found-at"].endswith("Z")
    # … locked in the store's mode for at least the draft floor …
    retention = store.client.get_object_retention(Bucket=store.bucket, Key=key,
                                                  VersionId=version)["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["RetainUntilDate"] >= datetime.now(UTC) + timedelta(days=29)
    # … and listed in the database
    with app.app_context():
        row = db.session.scalars(sa.select(QuarantinedObject)).one()
        assert (row.key, row.version_id, row.size) == (key, version, len(body))
        assert row.lock_mode == "COMPLIANCE" and row.reason.startswith("orphan")
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "storage.orphan_quarantined")) == 1
    code, report = _run(app, "reconcile", "--repair")
    assert code == 0 and report["discrepancies"] == 0 and report["known_orphans"] == [key]


def test_reconcile_repairs_missing_short_and_weak_locks(
    app: Flask, store: S3ObjectLockStore, s3_endpoint: str
) -> None:
    now = datetime.now(UTC)
    claimed = now + timedelta(seconds=120)
    # a short lock: the object was put with 10 s, the row claims 2 minutes
    short = _put(store, "records/T-1/short.bin", b"short",
                 ObjectLockMode="COMPLIANCE", ObjectLockRetainUntilDate=now + timedelta(seconds=10))
    short_id = _row(app, "records/T-1/short.bin", short, b"short", claimed)
    # no lock at all (a multipart upload whose lock re-apply failed)
    bare = _put(store, "records/T-1/bare.bin", b"bare")
    _row(app, "records/T-1/bare.bin", bare, b"bare", claimed)
    # a GOVERNANCE lock with the right date, in a store configured COMPLIANCE
    weak = _put(store, "records/T-1/weak.bin", b"weak",
                ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=claimed)
    _row(app, "records/T-1/weak.bin", weak, b"weak", claimed)
    # and a row whose object is not in the bucket at all
    gone_id = _row(app, "records/T-1/gone.bin", "no-such-version", b"gone", claimed)

    code, report = _run(app, "verify-storage")
    assert code == 1
    found = {(f["kind"], f["key"]) for f in report["findings"]}
    assert found == {("under_locked", "records/T-1/short.bin"),
                     ("under_locked", "records/T-1/bare.bin"),
                     ("under_locked", "records/T-1/weak.bin"),
                     ("missing", "records/T-1/gone.bin")}

    code, report = _run(app, "reconcile", "--repair")
    assert code == 0, report
    assert report["repaired"] == 4
    for key, version in (("records/T-1/short.bin", short), ("records/T-1/bare.bin", bare),
                         ("records/T-1/weak.bin", weak)):
        retention = store.client.get_object_retention(Bucket=store.bucket, Key=key,
                                                      VersionId=version)["Retention"]
        assert retention["Mode"] == "COMPLIANCE", key
        assert retention["RetainUntilDate"] >= claimed.replace(microsecond=0), key
    with app.app_context():
        assert db.session.get(StoredFile, gone_id).state is FileState.DAMAGED  # type: ignore[union-attr]
        assert db.session.get(StoredFile, short_id).state is FileState.RECORD  # type: ignore[union-attr]
        assert [d.row_id for d in db.session.scalars(sa.select(DamagedRecord))] == [gone_id]
    # the locks hold: verify-storage now reports only the known damage
    code, report = _run(app, "verify-storage")
    assert code == 1
    assert [(f["kind"], f["key"]) for f in report["findings"]] == [
        ("missing", "records/T-1/gone.bin")]
    code, report = _run(app, "reconcile")
    assert code == 0 and report["discrepancies"] == 0 and report["known_damaged"] == 1
