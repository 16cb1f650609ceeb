"""Retention, legal hold and disposal against a REAL S3 Object Lock server (Ceph RGW; never moto).

``PDM_TEST_S3_ENDPOINT_URL`` points at the server (``scripts/test`` and CI start it; without it
these tests are skipped, and CI fails on any skip). Each test works in a new COMPLIANCE bucket
with a seconds-scale test policy, so the server itself enforces the deadlines, and waits for
expiry by polling the condition with a bound. Cases have no draft uploads here: a draft keeps a
30-day floor, which would outlive the throw-away server's run.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from flask import Flask

from pdm_records.errors import Conflict
from pdm_records.extensions import db
from pdm_records.models import Case, Tombstone, TombstoneState, User
from pdm_records.services import retention as svc
from pdm_records.storage import ObjectNotFound, ObjectStore
from pdm_records.storage.s3 import build_client, create_bucket
from tests.conftest import PASSWORD, Accounts
from tests.retention_support import release, seconds_policy, signed_case

pytestmark = pytest.mark.s3
BOUND_S = 40.0


@pytest.fixture(scope="module")
def s3_endpoint() -> str:
    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL")
    if not endpoint:
        pytest.skip("PDM_TEST_S3_ENDPOINT_URL is not set: start the Object Lock test server "
                    '(`eval "$(scripts/s3-test-server start)"`) and export it')
    return endpoint


@pytest.fixture(scope="module")
def region() -> str:
    return os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@pytest.fixture(scope="module")
def client(s3_endpoint: str, region: str) -> Any:
    return build_client(s3_endpoint, region)


@pytest.fixture
def bucket(client: Any, region: str) -> str:
    name = f"pdm-ret-{uuid.uuid4().hex[:16]}"
    create_bucket(client, name, region)
    return name


@pytest.fixture
def retention_seconds() -> int:
    return 4


@pytest.fixture
def config_overrides(s3_endpoint: str, region: str, bucket: str, tmp_path: Path,
                     retention_seconds: int) -> dict[str, Any]:
    return {"PDM_STORAGE_BACKEND": "s3", "PDM_S3_BUCKET": bucket,
            "PDM_S3_ENDPOINT_URL": s3_endpoint, "PDM_S3_REGION": region,
            "PDM_S3_LOCK_MODE": "COMPLIANCE",
            "PDM_RETENTION_POLICY": seconds_policy(tmp_path, retention_seconds)}


def _poll(condition: Callable[[], bool], what: str) -> None:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > BOUND_S:
            pytest.fail(f"{what}: still not true after {BOUND_S:.0f} s")
        time.sleep(0.25)


def _store(app: Flask) -> ObjectStore:
    store: ObjectStore = app.extensions["pdm_store_factory"]()
    return store


def _user(email: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    assert user is not None
    return user


def _case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    assert case is not None
    return case


def _server_delete(client: Any, bucket: str, key: str, version_id: str | None) -> str:
    """Ask the server directly (no application check): the error code, or 'deleted'."""
    try:
        client.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
    except ClientError as exc:
        return str(exc.response.get("Error", {}).get("Code"))
    return "deleted"


def _expired(app: Flask, case_id: int) -> Callable[[], bool]:
    def check() -> bool:
        with app.app_context():
            return svc.disposal_refusal(db.session, _case(case_id), datetime.now(UTC)) is None

    return check


@pytest.mark.parametrize("retention_seconds", [120])
def test_release_extends_every_object_in_the_server(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], client: Any,
        bucket: str) -> None:
    case_ref = signed_case(app, accounts, catalogue, files=0)
    store = _store(app)
    with app.app_context():
        signed_until = _case(case_ref["id"]).retain_until
        assert signed_until is not None
    time.sleep(1.1)  # so that the release moves the whole-second deadline the server keeps
    release(app, case_ref)
    with app.app_context():
        case = _case(case_ref["id"])
        assert case.retain_until is not None and case.retain_until > signed_until
        objects = svc.case_objects(db.session, case)
        assert len(objects) == 3  # authored, approved, released signed records
        for obj in objects:
            info = store.head(obj.key, version_id=obj.version_id)
            assert info.lock_mode == "COMPLIANCE"
            assert info.retain_until is not None and info.retain_until >= case.retain_until
            assert (info.retain_until - case.retain_until).total_seconds() < 1
            retention = client.get_object_retention(Bucket=bucket, Key=obj.key,
                                                    VersionId=obj.version_id)["Retention"]
            assert retention["Mode"] == "COMPLIANCE"
        view = svc.case_retention(db.session, case, store)
        assert view["storage"]["lock_modes"] == ["COMPLIANCE"]
        assert view["storage"]["checked"] == 3 and view["storage"]["problems"] == []


def test_legal_hold_blocks_delete_at_the_server_then_disposal_after_release(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], client: Any,
        bucket: str) -> None:
    case_ref = signed_case(app, accounts, catalogue, files=0)
    store = _store(app)
    quality = accounts.user("quality").email
    with app.app_context():
        hold = svc.place_hold(db.session, store, actor=_user(quality),
                              case=_case(case_ref["id"]), reason="litigation",
                              password=PASSWORD, totp_code=accounts.totp("quality"))
        db.session.commit()
        hold_id = hold.id
        objects = [(o.key, o.version_id) for o in svc.case_objects(db.session,
                                                                   _case(case_ref["id"]))]
        assert objects
        for key, version_id in objects:
            assert client.get_object_legal_hold(Bucket=bucket, Key=key, VersionId=version_id)[
                "LegalHold"]["Status"] == "ON"

    def retention_over() -> bool:
        with app.app_context():
            until = _case(case_ref["id"]).retain_until
            assert until is not None
            return datetime.now(UTC).timestamp() > until.timestamp() + 1

    _poll(retention_over, "the retention period")
    # The date has passed, but the hold blocks deletion: in the application and at the server.
    with app.app_context():
        with pytest.raises(Conflict, match="legal hold"):
            svc.start_disposal(db.session, store, actor=_user(quality),
                               case=_case(case_ref["id"]), reason="expired", password=PASSWORD)
        db.session.rollback()
    key, version_id = objects[0]
    assert _server_delete(client, bucket, key, version_id) == "AccessDenied"
    with app.app_context():
        svc.release_hold(db.session, store, actor=_user(quality), case=_case(case_ref["id"]),
                         hold_id=hold_id, reason="settled", password=PASSWORD,
                         totp_code=accounts.totp("quality"))
        db.session.commit()
        _dispose(app, store, case_ref["id"], quality, accounts.totp("quality"))
        for key, version_id in objects:
            with pytest.raises(ObjectNotFound):
                store.head(key, version_id=version_id)


def _dispose(app: Flask, store: ObjectStore, case_id: int, email: str, totp_code: str) -> None:
    tomb = svc.start_disposal(db.session, store, actor=_user(email), case=_case(case_id),
                              reason="retention ended", password=PASSWORD, totp_code=totp_code)
    db.session.commit()
    for _ in svc.run_disposal(db.session, store, actor=_user(email), tombstone=tomb):
        db.session.commit()
    db.session.commit()


@pytest.mark.parametrize("retention_seconds", [15])  # long enough to try deleting before expiry
def test_disposal_only_after_expiry_refused_by_the_application_and_the_server(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], client: Any,
        bucket: str) -> None:
    case_ref = signed_case(app, accounts, catalogue, files=0)
    store = _store(app)
    quality = accounts.user("quality").email
    with app.app_context():
        case = _case(case_ref["id"])
        objects = [(o.key, o.version_id) for o in svc.case_objects(db.session, case)]
        with pytest.raises(Conflict, match="disposal before then is refused"):
            svc.start_disposal(db.session, store, actor=_user(quality), case=case,
                               reason="early", password=PASSWORD)
        db.session.rollback()
    # The server refuses too (COMPLIANCE: nobody can delete a locked version).
    key, version_id = objects[0]
    assert _server_delete(client, bucket, key, version_id) == "AccessDenied"
    _poll(_expired(app, case_ref["id"]), "eligibility for disposal")
    with app.app_context():
        _dispose(app, store, case_ref["id"], quality, accounts.totp("quality"))
        tomb = db.session.scalar(sa.select(Tombstone).where(
            Tombstone.case_id == case_ref["id"]))
        assert tomb is not None and tomb.state is TombstoneState.COMPLETE
        assert [i.outcome for i in tomb.items] == ["deleted"] * len(objects)
        versions = client.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
        assert versions == []
        tombstone = client.head_object(Bucket=bucket, Key=tomb.record_key,
                                       VersionId=tomb.record_version_id)
        assert tombstone["ObjectLockMode"] == "COMPLIANCE"
