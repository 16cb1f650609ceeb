"""``pdm reconcile`` and ``pdm verify-storage`` on the local store, with injected corruption.

The local store can be corrupted from the shell (which is why only S3 COMPLIANCE protects
against someone with shell access): each kind of damage is injected in the store folder or the
database, found, and repaired as docs/storage-consistency.md specifies.
"""

from __future__ import annotations

import io
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.canonical import utc_iso
from pdm_records.clock import utcnow
from pdm_records.extensions import db
from pdm_records.models import (
    AuditEvent,
    DamagedRecord,
    FileState,
    QuarantinedObject,
    Signature,
    StoredFile,
    User,
)
from pdm_records.services import files
from pdm_records.services.requests import get_case, transition
from pdm_records.storage import LocalWriteOnceStore
from pdm_records.storage.uploads import SpooledUpload
from tests.conftest import PASSWORD, Accounts, table_counts
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create


def _accept(upload: SpooledUpload) -> str:
    return "application/octet-stream"


def _store(app: Flask) -> LocalWriteOnceStore:
    return LocalWriteOnceStore(app.config["PDM_STORAGE_PATH"])


def _upload(app: Flask, account_id: int, data: bytes) -> dict[str, Any]:
    """A stored file indexed by a row (no attachment), committed."""
    with app.app_context():
        actor = db.session.get(User, account_id)
        row = files.store_upload(db.session, _store(app), actor=actor, stream=io.BytesIO(data),
                                 original_name="part.bin", max_bytes=4096, validate=_accept)
        db.session.commit()
        return {"id": row.id, "key": row.key, "version_id": row.version_id,
                "retain_until": row.retain_until}


def _run(app: Flask, *args: str) -> tuple[int, dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["pdm", *args, "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def _meta(app: Flask, key: str) -> Path:
    return Path(app.config["PDM_STORAGE_PATH"]) / "meta" / f"{key}.json"


def _data(app: Flask, key: str) -> Path:
    return Path(app.config["PDM_STORAGE_PATH"]) / "data" / key


@pytest.fixture
def submitted(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    assert attach(app, clinician, case["id"], binary_stl(), "plan.stl").status_code == 201
    response = app.test_client().post(f"/api/v1/cases/{case['id']}/submit",
                                      json={"password": PASSWORD}, headers=bearer(clinician))
    assert response.status_code == 200
    return {"id": case["id"]}


def test_a_consistent_store_passes_both_commands(app: Flask, submitted: dict[str, Any]) -> None:
    code, report = _run(app, "reconcile")
    assert code == 0, report
    # one frozen attachment and one signed-record object, both read back
    assert report["checked"] == 2 and report["store_keys"] == 2
    assert report["discrepancies"] == 0 and report["findings"] == [] and report["ok"]
    code, report = _run(app, "verify-storage")
    assert code == 0 and report["checked"] == 2 and report["ok"]
    # the text form shows a progress label and a summary
    result = app.test_cli_runner().invoke(args=["pdm", "verify-storage"])
    assert result.exit_code == 0
    assert "verifying stored objects" in result.output and "0 discrepancies" in result.output


def test_injected_corruption_is_found_then_repaired_once(
    app: Flask, accounts: Accounts, submitted: dict[str, Any]
) -> None:
    engineer = accounts.user("engineer")
    altered = _upload(app, engineer.id, b"genuine bytes of an upload")
    deleted = _upload(app, engineer.id, b"bytes that will vanish")
    dropped = _upload(app, engineer.id, b"bytes whose row will be dropped")
    weakened = _upload(app, engineer.id, b"bytes whose lock will be shortened")
    with app.app_context():
        frozen = db.session.scalars(sa.select(StoredFile).where(
            StoredFile.state == FileState.RECORD)).one()
        frozen_key, frozen_id = frozen.key, frozen.id

    # 1. edit a file in the store folder (root can, despite the read-only mode)
    path = _data(app, altered["key"])
    os.chmod(path, 0o644)
    path.write_bytes(b"tampered bytes of an upload")
    # 2. delete one
    _data(app, deleted["key"]).unlink()
    # 3. drop a row: its object becomes an orphan
    with app.app_context():
        db.session.execute(sa.delete(StoredFile).where(StoredFile.id == dropped["id"]))
        db.session.commit()
    # 4. write an orphan file (no metadata, as a put interrupted between its two writes)
    orphan = _data(app, "draft/2026/01/stray-upload")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"nobody indexes me")
    # 5. weaken a recorded retain-until (the store keeps it shorter than the database says)
    meta_path = _meta(app, weakened["key"])
    meta = json.loads(meta_path.read_text())
    meta["retain_until"] = utc_iso(utcnow() + timedelta(days=1))
    meta_path.write_text(json.dumps(meta))
    # 6. the database says the frozen record is under legal hold; the store does not
    with app.app_context():
        db.session.get(StoredFile, frozen_id).legal_hold = True  # type: ignore[union-attr]
        db.session.commit()

    before = table_counts(app)
    code, report = _run(app, "reconcile")
    assert code == 1
    found = {(f["kind"], f["key"]) for f in report["findings"]}
    assert found == {
        ("altered", altered["key"]), ("missing", deleted["key"]),
        ("orphan", dropped["key"]), ("orphan", "draft/2026/01/stray-upload"),
        ("under_locked", weakened["key"]), ("hold_missing", frozen_key)}
    assert report["unresolved"] == 6 and not report["ok"]
    # looking changes nothing but the run's own audit event
    after = table_counts(app)
    assert {k: v for k, v in after.items() if v != before[k]} == {
        "audit_event": before["audit_event"] + 1}

    code, report = _run(app, "reconcile", "--repair")
    assert code == 0, report
    assert report["repaired"] == 6 and report["unresolved"] == 0
    assert all(f["repaired"] for f in report["findings"])
    with app.app_context():
        assert db.session.get(StoredFile, altered["id"]).state is FileState.DAMAGED  # type: ignore[union-attr]
        assert db.session.get(StoredFile, deleted["id"]).state is FileState.DAMAGED  # type: ignore[union-attr]
        damaged = {(d.row_id, d.problem) for d in db.session.scalars(sa.select(DamagedRecord))}
        assert damaged == {(altered["id"], "altered"), (deleted["id"], "missing")}
        alerts = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "alert.record_damaged")).all()
        assert {a.target_id for a in alerts} == {str(altered["id"]), str(deleted["id"])}
        quarantined = {q.key: q for q in db.session.scalars(sa.select(QuarantinedObject))}
        assert set(quarantined) == {dropped["key"], "draft/2026/01/stray-upload"}
        stray = quarantined["draft/2026/01/stray-upload"]
        assert stray.size == len(b"nobody indexes me") and stray.found_at is not None
        assert stray.reason.startswith("orphan") and stray.version_id
    store = _store(app)
    # the orphans are marked in the store itself and kept (draft floor: 30 days)
    for key in (dropped["key"], "draft/2026/01/stray-upload"):
        meta = json.loads(_meta(app, key).read_text())
        assert meta["quarantine"]["reason"].startswith("orphan")
        info = store.head(key)
        assert info.retain_until is not None
        assert info.retain_until >= utcnow() + timedelta(days=29)
    # the lock is back to what the database says, the hold is placed
    info = store.head(weakened["key"])
    assert info.retain_until is not None and info.retain_until >= weakened["retain_until"]
    assert store.head(frozen_key).legal_hold is True

    # idempotent: a second run finds nothing new and repairs nothing
    events = table_counts(app)["audit_event"]
    code, report = _run(app, "reconcile", "--repair")
    assert code == 0, report
    assert report["discrepancies"] == 0 and report["findings"] == []
    assert report["known_quarantined"] == 2 and report["known_damaged"] == 2
    assert table_counts(app)["audit_event"] == events + 1  # only the run's event

    # verify-storage still fails: two records are damaged, and damage is not repaired away
    code, report = _run(app, "verify-storage")
    assert code == 1
    assert {(f["kind"], f["key"]) for f in report["findings"]} == {
        ("altered", altered["key"]), ("missing", deleted["key"])}

    # doctor mentions the last result; the quality page lists quarantine and damage
    doctor = app.test_cli_runner().invoke(args=["pdm", "doctor"])
    assert "last verify-storage" in doctor.output and "2 unresolved" in doctor.output


def test_a_signed_record_whose_commit_fails_is_an_orphan_reconcile_lists(
    app: Flask, accounts: Accounts, catalogue: dict[str, int]
) -> None:
    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    account = accounts.user("clinician")
    with app.app_context():
        actor = db.session.get(User, account.id)
        assert actor is not None
        row = get_case(db.session, actor, case["id"], lock=True)
        transition(db.session, _store(app), actor=actor, case=row, target="submitted",
                   password=PASSWORD)
        key = db.session.scalars(sa.select(Signature.record_key)).one()
        db.session.rollback()  # the commit "fails": the signed-record object was already put
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Signature)) == 0
    assert key.startswith("records/")
    code, report = _run(app, "reconcile")
    assert code == 1
    assert [(f["kind"], f["key"]) for f in report["findings"]] == [("orphan", key)]
    code, report = _run(app, "reconcile", "--repair")
    assert code == 0 and report["findings"][0]["repaired"]
    # a records/ orphan may be a record whose row was lost: it keeps its 15-year lock
    info = _store(app).head(key)
    assert info.retain_until is not None
    assert info.retain_until >= utcnow() + timedelta(days=15 * 365 - 1)


def test_storage_down_is_reported_plainly(app: Flask, submitted: dict[str, Any]) -> None:
    app.config.update(PDM_STORAGE_BACKEND="s3", PDM_S3_BUCKET="pdm-down",
                      PDM_S3_ENDPOINT_URL="http://127.0.0.1:1", PDM_S3_REGION="us-east-1")
    for command in ("reconcile", "verify-storage"):
        code, report = _run(app, command)
        assert code == 2
        assert report["error"] == "storage_unavailable"
        assert "cannot be reached" in report["message"]
        result = app.test_cli_runner().invoke(args=["pdm", command])
        assert result.exit_code == 2
        assert "error: storage unavailable" in result.output and "Traceback" not in result.output


def test_quality_page_lists_quarantine_and_damage(
    app: Flask, accounts: Accounts, submitted: dict[str, Any]
) -> None:
    engineer = accounts.user("engineer")
    gone = _upload(app, engineer.id, b"to be lost")
    _data(app, gone["key"]).unlink()
    orphan = _data(app, "draft/2026/02/orphan-on-page")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    code, _ = _run(app, "reconcile", "--repair")
    assert code == 0
    client = app.test_client()
    accounts.login(client, "quality")
    page = client.get("/admin/storage")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "draft/2026/02/orphan-on-page" in html and gone["key"] in html
    assert "missing" in html and "last reconcile" in html


def test_audit_checkpoints_are_expected_objects_never_orphans(
        app: Flask, submitted: dict[str, Any]) -> None:
    """Checkpoints are write-once evidence of the audit chain (21 CFR Part 11 §11.10(e)):
    reconcile checks their lock like any record and never quarantines one, listed or not."""
    result = app.test_cli_runner().invoke(args=["pdm", "audit-checkpoint"])
    assert result.exit_code == 0, result.output
    code, report = _run(app, "reconcile")
    assert code == 0, report
    assert report["checked"] == 3 and report["store_keys"] == 3
    assert report["discrepancies"] == 0 and report["findings"] == []
    with app.app_context():
        from pdm_records.models import AuditCheckpoint

        checkpoint = db.session.scalars(sa.select(AuditCheckpoint)).one()
        assert checkpoint.key.startswith("audit/checkpoints/")
