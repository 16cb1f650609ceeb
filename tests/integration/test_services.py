"""Services: audit events share the change's transaction; uploads refuse cleanly."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.errors import PayloadTooLarge, ValidationError
from pdm_records.extensions import db
from pdm_records.models import AuditEvent, FileState, StoredFile, User
from pdm_records.services import files, users
from pdm_records.services.cases import allocate_case_number
from pdm_records.storage import LocalWriteOnceStore
from pdm_records.storage.uploads import SpooledUpload
from tests.conftest import Accounts, object_count, table_counts


def test_a_change_and_its_audit_event_commit_or_roll_back_together(app: Flask) -> None:
    with app.app_context():
        users.create_user(db.session, actor=None, email="a@example.org",
                          password="a long enough passphrase", printed_name="A B",
                          roles=["engineer"])
        assert db.session.query(AuditEvent).count() == 1  # flushed, same transaction
        db.session.rollback()
        assert db.session.query(User).count() == 0
        assert db.session.query(AuditEvent).count() == 0


def test_audit_event_records_actor_time_and_values(app: Flask, accounts: Accounts) -> None:
    admin = accounts.user("admin")
    with app.app_context():
        actor = db.session.get(User, admin.id)
        target = users.create_user(db.session, actor=actor, email="t@example.org",
                                   password="a long enough passphrase", printed_name="T U",
                                   roles=["engineer"])
        db.session.commit()
        users.set_active(db.session, actor=actor, user=target, active=False)  # type: ignore[arg-type]
        db.session.commit()
        event = db.session.scalars(sa.select(AuditEvent).where(
            AuditEvent.action == "user.deactivated")).one()
        assert event.actor_id == admin.id
        assert event.actor_label == "Test Admin <test-admin@example.org>"
        assert event.occurred_at.tzinfo is not None
        assert event.before is not None and event.before["active"] is True
        assert event.after is not None and event.after["active"] is False


def _accept_stl(upload: SpooledUpload) -> str:
    if not upload.path.read_bytes().startswith(b"solid"):
        raise ValidationError("Not an STL file.", {"file": ["The file is not an ASCII STL."]})
    return "model/stl"


def test_store_upload_stores_validated_files(app: Flask, accounts: Accounts) -> None:
    account = accounts.user("engineer")
    with app.app_context():
        store = LocalWriteOnceStore(app.config["PDM_STORAGE_PATH"])
        actor = db.session.get(User, account.id)
        assert actor is not None
        row = files.store_upload(db.session, store, actor=actor,
                                 stream=io.BytesIO(b"solid part\nendsolid part\n"),
                                 original_name="../../part.stl", max_bytes=1024,
                                 validate=_accept_stl)
        db.session.commit()
        assert row.original_name == "part.stl"
        assert row.state is FileState.DRAFT and row.key.startswith("draft/")
        assert store.read(row.key, version_id=row.version_id, sha256=row.sha256).startswith(
            b"solid")
        assert db.session.query(AuditEvent).filter_by(action="file.stored").count() == 1


@pytest.mark.parametrize(("data", "error"), [
    (b"", ValidationError),
    (b"not an stl", ValidationError),
    (b"solid " + b"x" * 2048, PayloadTooLarge),
])
def test_refused_uploads_leave_no_rows_and_no_objects(
        app: Flask, accounts: Accounts, data: bytes, error: type[Exception]) -> None:
    account = accounts.user("engineer")
    before_rows, before_objects = table_counts(app), object_count(app)
    with app.app_context():
        store = LocalWriteOnceStore(app.config["PDM_STORAGE_PATH"])
        actor = db.session.get(User, account.id)
        assert actor is not None
        with pytest.raises(error) as info:
            files.store_upload(db.session, store, actor=actor, stream=io.BytesIO(data),
                               original_name="x.stl", max_bytes=1024, validate=_accept_stl)
        assert "file" in info.value.field_errors  # type: ignore[attr-defined]
        db.session.rollback()
        assert db.session.query(StoredFile).count() == 0
    assert table_counts(app) == before_rows
    assert object_count(app) == before_objects


def test_case_numbers_are_sequential_per_year(app: Flask) -> None:
    with app.app_context():
        numbers = [allocate_case_number(db.session, datetime(2026, 5, 1, tzinfo=UTC))
                   for _ in range(3)]
        next_year = allocate_case_number(db.session, datetime(2027, 1, 1, tzinfo=UTC))
        db.session.commit()
    assert numbers == ["PDM-2026-000001", "PDM-2026-000002", "PDM-2026-000003"]
    assert next_year == "PDM-2027-000001"
