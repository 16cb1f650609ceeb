"""Retention on the local write-once store (DOMAIN.md §5): the floor at signing, extension by
later events on every object, never shortening, legal hold, disposal with a tombstone, and an
interrupted disposal completed by a re-run. Time is moved with the services' ``now`` (the clock
seam); the S3 tests wait for the real server's clock instead."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.canonical import sha256_hex
from pdm_records.errors import Conflict, Forbidden, ServiceUnavailable, ValidationError
from pdm_records.extensions import db
from pdm_records.models import (
    AuditEvent,
    Case,
    DisposalItem,
    FileState,
    LegalHold,
    Signature,
    SignatureMeaning,
    StoredFile,
    Tombstone,
    TombstoneState,
    User,
)
from pdm_records.retention import Policy, Regime, parse_period
from pdm_records.services import retention as svc
from pdm_records.storage import LocalWriteOnceStore, ObjectNotFound, ObjectStore, StorageUnavailable
from tests.conftest import PASSWORD, Accounts, table_counts
from tests.retention_support import DELIVERY_POLICY, deliver, release, signed_case, write_policy

FAR = timedelta(days=365 * 100)


@pytest.fixture
def config_overrides(tmp_path: Path) -> dict[str, Any]:
    return {"PDM_RETENTION_POLICY": write_policy(tmp_path, DELIVERY_POLICY)}


def _store(app: Flask) -> ObjectStore:
    store: ObjectStore = app.extensions["pdm_store_factory"]()
    return store


def _case(case_id: int) -> Case:
    case = db.session.get(Case, case_id)
    assert case is not None
    return case


def _user(email: str) -> User:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    assert user is not None
    return user


def _objects(case: Case) -> list[svc.RecordObject]:
    return svc.case_objects(db.session, case)


def test_signing_protects_every_record_with_the_policy_floor(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    with app.app_context():
        case = _case(case_ref["id"])
        signature = db.session.scalar(sa.select(Signature).where(
            Signature.case_id == case.id, Signature.meaning == SignatureMeaning.AUTHORED))
        assert signature is not None
        expected = signature.signed_at.replace(year=signature.signed_at.year + 15)
        assert case.retain_until == expected  # IMDRF: implantable, 15 years after signing
        objects = _objects(case)
        assert [o.kind for o in objects] == ["stored_file", "stored_file", "signature"]
        for obj in objects:
            assert store.head(obj.key, version_id=obj.version_id).retain_until == expected
            if obj.row is not None:
                assert obj.row.state is FileState.RECORD and obj.row.retain_until == expected
        view = svc.case_retention(db.session, case, store)
        assert view["retention_class"] == "implantable"
        assert "IMDRF N58: 15 years after signed" in view["explanation"]
        assert view["storage"]["checked"] == 3 and view["storage"]["problems"] == []
        assert "after-delivery: waits for delivered" in view["not_applied"]


def test_release_and_delivery_extend_every_object_never_shorten(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    release(app, case_ref)
    store = _store(app)
    with app.app_context():
        case = _case(case_ref["id"])
        assert case.released_at is not None
        released_until = case.retain_until
        assert released_until == case.released_at.replace(year=case.released_at.year + 15)
        assert len(_objects(case)) == 5  # 2 files + authored, approved, released signatures
    delivered_on = date.today()
    deliver(app, case_ref, delivered_on)
    with app.app_context():
        case = _case(case_ref["id"])
        expected = datetime.combine(delivered_on.replace(year=delivered_on.year + 20), time(),
                                    UTC)
        assert case.retain_until == expected
        for obj in _objects(case):
            assert store.head(obj.key, version_id=obj.version_id).retain_until == expected
            if obj.row is not None:
                assert obj.row.retain_until == expected
        event = db.session.scalar(sa.select(AuditEvent).where(
            AuditEvent.action == "retention.extended").order_by(AuditEvent.id.desc()))
        assert event is not None and event.after is not None
        assert event.after["regime"] == "after-delivery" and event.after["cause"] == \
            "case delivered"
        assert event.before == {"retain_until": released_until.strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ") if released_until else None}
        # A shorter policy later never shortens anything.
        app.extensions["pdm_retention_policy"] = Policy((Regime(
            name="short", title="short", source="", clock=("signed",),
            implantable=parse_period("1 days"), other=parse_period("1 days")),))
        svc.protect_case(db.session, store, actor=None, case=case, cause="policy change")
        db.session.commit()
        assert _case(case_ref["id"]).retain_until == expected
        for obj in _objects(case):
            assert store.head(obj.key, version_id=obj.version_id).retain_until == expected


def test_legal_hold_is_signed_applied_to_every_object_and_blocks_disposal(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    quality = accounts.user("quality").email
    clinician = accounts.user("clinician").email
    with app.app_context():
        case = _case(case_ref["id"])
        with pytest.raises(Forbidden):
            svc.place_hold(db.session, store, actor=_user(clinician), case=case,
                           reason="litigation", password=PASSWORD)
        with pytest.raises(ValidationError) as no_reason:
            svc.place_hold(db.session, store, actor=_user(quality), case=case, reason=" ",
                           password=PASSWORD)
        assert "reason" in no_reason.value.field_errors
        with pytest.raises(ValidationError) as bad_password:
            svc.place_hold(db.session, store, actor=_user(quality), case=case,
                           reason="litigation", password="wrong")
        assert "password" in bad_password.value.field_errors
        db.session.rollback()
        hold = svc.place_hold(db.session, store, actor=_user(quality), case=case,
                              reason="litigation 2026-17", password=PASSWORD,
                              totp_code=accounts.totp("quality"))
        db.session.commit()
        hold_id = hold.id
        assert hold.placed_signature_id is not None
        signature = db.session.get(Signature, hold.placed_signature_id)
        assert signature is not None and signature.meaning is SignatureMeaning.LEGAL_HOLD
        assert signature.record_key.startswith("holds/")
        for obj in _objects(case):
            assert store.head(obj.key, version_id=obj.version_id).legal_hold is True
            if obj.row is not None:
                assert obj.row.legal_hold is True
        # Whatever the date: refused by the application, and by the store itself.
        later = datetime.now(UTC) + FAR
        assert "legal hold" in (svc.disposal_refusal(db.session, case, later) or "")
        with pytest.raises(Conflict, match="under legal hold"):
            svc.start_disposal(db.session, store, actor=_user(quality), case=case,
                               reason="expired", password=PASSWORD, now=later)
        first = _objects(case)[0]
        with pytest.raises(Exception, match="legal hold"):
            store.delete(first.key, version_id=first.version_id, now=later)
        assert case.id not in {c.id for c in db.session.scalars(svc.eligible_query(later))}
        # A second hold keeps the objects held when the first is released.
        second = svc.place_hold(db.session, store, actor=_user(quality), case=case,
                                reason="regulator inquiry", password=PASSWORD,
                                totp_code=accounts.totp("quality"))
        svc.release_hold(db.session, store, actor=_user(quality), case=case, hold_id=hold_id,
                         reason="settled", password=PASSWORD,
                         totp_code=accounts.totp("quality"))
        db.session.commit()
        assert all(store.head(o.key, version_id=o.version_id).legal_hold for o in _objects(case))
        with pytest.raises(Conflict, match="released"):
            svc.release_hold(db.session, store, actor=_user(quality), case=case,
                             hold_id=hold_id, reason="again", password=PASSWORD)
        svc.release_hold(db.session, store, actor=_user(quality), case=case, hold_id=second.id,
                         reason="closed", password=PASSWORD,
                         totp_code=accounts.totp("quality"))
        db.session.commit()
        for obj in _objects(case):
            assert store.head(obj.key, version_id=obj.version_id).legal_hold is False
            if obj.row is not None:
                assert obj.row.legal_hold is False
        history = db.session.scalars(sa.select(LegalHold).order_by(LegalHold.id)).all()
        assert [(h.reason, h.release_reason) for h in history] == [
            ("litigation 2026-17", "settled"), ("regulator inquiry", "closed")]
        meanings = [s.meaning for s in db.session.scalars(sa.select(Signature).where(
            Signature.case_id == case.id).order_by(Signature.id))]
        assert meanings.count(SignatureMeaning.HOLD_RELEASED) == 2
        assert svc.disposal_refusal(db.session, case, later) is None


def test_disposal_before_expiry_is_refused_and_changes_nothing(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    quality = accounts.user("quality").email
    before = table_counts(app)
    with app.app_context():
        case = _case(case_ref["id"])
        assert case.retain_until is not None
        just_before = case.retain_until - timedelta(seconds=1)
        with pytest.raises(Conflict, match=r"is retained until .* disposal before then is "
                                           r"refused") as refused:
            svc.start_disposal(db.session, store, actor=_user(quality), case=case,
                               reason="tidy up", password=PASSWORD, now=just_before)
        assert refused.value.status == 409
        db.session.rollback()
        obj = _objects(case)[0]
        with pytest.raises(Exception, match="retained until"):
            store.delete(obj.key, version_id=obj.version_id, now=just_before)
    assert table_counts(app) == before


def _dispose(app: Flask, store: ObjectStore, case_id: int, email: str, now: datetime,
             totp_code: str) -> int:
    with app.app_context():
        tomb = svc.start_disposal(db.session, store, actor=_user(email), case=_case(case_id),
                                  reason="retention ended; reviewed", password=PASSWORD,
                                  now=now, totp_code=totp_code)
        db.session.commit()
        tomb_id = tomb.id
        for _ in svc.run_disposal(db.session, store, actor=_user(email), tombstone=tomb,
                                  now=now):
            db.session.commit()
        db.session.commit()
        return tomb_id


def test_disposal_deletes_by_version_and_keeps_a_signed_tombstone(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    quality = accounts.user("quality").email
    with app.app_context():
        case = _case(case_ref["id"])
        assert case.retain_until is not None
        after = case.retain_until + timedelta(seconds=1)
        objects = [(o.kind, o.key, o.version_id, o.sha256, o.size) for o in _objects(case)]
        events_before = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        assert case.id in {c.id for c in db.session.scalars(svc.eligible_query(after))}
    tomb_id = _dispose(app, store, case_ref["id"], quality, after, accounts.totp("quality"))
    with app.app_context():
        tomb = db.session.get(Tombstone, tomb_id)
        assert tomb is not None and tomb.state is TombstoneState.COMPLETE
        for _kind, key, version_id, _sha, _size in objects:
            with pytest.raises(ObjectNotFound):
                store.head(key, version_id=version_id)
        rows = db.session.scalars(sa.select(StoredFile).where(
            StoredFile.case_id == case_ref["id"])).all()
        assert rows and all(r.state is FileState.DISPOSED for r in rows)
        # The tombstone object: signed canonical JSON naming every destroyed object.
        signature = db.session.get(Signature, tomb.signature_id)
        assert signature is not None and signature.meaning is SignatureMeaning.DISPOSAL
        from pdm_records.services.signatures import signed_document

        body = store.read(tomb.record_key, version_id=tomb.record_version_id,
                          sha256=sha256_hex(signed_document(signature)))
        document = json.loads(body)
        record = document["record"]
        assert record["record_type"] == "tombstone" and record["case_number"] == \
            _case(case_ref["id"]).number
        assert [(o["kind"], o["key"], o["version_id"], o["sha256"], o["size"])
                for o in record["objects"]] == objects
        assert record["reason"] == "retention ended; reviewed"
        assert record["disposed_by"]["email"] == quality
        assert document["signature"]["meaning"] == "disposal"
        assert tomb.record_key.startswith("tombstones/")
        # The audit trail is never disposed, and it records the disposal.
        events_after = db.session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
        assert events_after is not None and events_before is not None
        assert events_after > events_before
        actions = set(db.session.scalars(sa.select(AuditEvent.action)))
        assert {"disposal.started", "case.disposed"} <= actions
        # Disposed once: a second disposal is a clear 409; holds are refused too.
        with pytest.raises(Conflict, match="was disposed"):
            svc.start_disposal(db.session, store, actor=_user(quality),
                               case=_case(case_ref["id"]), reason="again", password=PASSWORD,
                               now=after)
        view = svc.case_retention(db.session, _case(case_ref["id"]), store)
        assert view["disposal"]["state"] == "complete" and view["disposal"]["remaining"] == 0
    # Reconcile expects the objects the tombstone lists to be gone: no "missing", no damage.
    result = app.test_cli_runner().invoke(args=["pdm", "reconcile", "--json"])
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["discrepancies"] == 0, report


class FailingStore(LocalWriteOnceStore):
    """A fake adapter: the local store whose deletes fail after ``allowed`` successes."""

    def __init__(self, root: Path | str, allowed: int) -> None:
        super().__init__(root)
        self.allowed = allowed

    def delete(self, key: str, *, version_id: str | None, now: datetime) -> None:
        if self.allowed <= 0:
            raise StorageUnavailable("disk went away")
        self.allowed -= 1
        super().delete(key, version_id=version_id, now=now)


def test_an_interrupted_disposal_is_recorded_and_a_rerun_completes_it(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    quality = accounts.user("quality").email
    failing = FailingStore(app.config["PDM_STORAGE_PATH"], allowed=1)
    with app.app_context():
        case = _case(case_ref["id"])
        assert case.retain_until is not None
        after = case.retain_until + timedelta(seconds=1)
    with pytest.raises(ServiceUnavailable, match=r"stopped at .*1 of 3 objects deleted"):
        _dispose(app, failing, case_ref["id"], quality, after, accounts.totp("quality"))
    with app.app_context():
        db.session.rollback()
        tomb = db.session.scalar(sa.select(Tombstone))
        assert tomb is not None and tomb.state is TombstoneState.PENDING
        done = [i.deleted_at is not None for i in tomb.items]
        assert done == [True, False, False]
        view = svc.case_retention(db.session, _case(case_ref["id"]), store)
        assert view["disposal"]["state"] == "pending" and view["disposal"]["remaining"] == 2
        # Simulate a lost commit: the second object is deleted in the store but not marked.
        second = tomb.items[1]
        store.delete(second.key, version_id=second.version_id, now=after)
    tomb_id = _dispose(app, store, case_ref["id"], quality, after, accounts.totp("quality"))
    with app.app_context():
        tomb = db.session.get(Tombstone, tomb_id)
        assert tomb is not None and tomb.state is TombstoneState.COMPLETE
        outcomes = [i.outcome for i in db.session.scalars(sa.select(DisposalItem).order_by(
            DisposalItem.id))]
        assert outcomes == ["deleted", "absent", "deleted"]
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Tombstone)) == 1
        assert "disposal.resumed" in set(db.session.scalars(sa.select(AuditEvent.action)))


def test_the_envelope_and_report_a_case_used_are_kept_as_long_as_the_case(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    from pdm_records.models import EnvelopeVersion
    from tests.functional.test_envelopes_verification import (
        HOLLOW_LIMITS,
        _case_in_design,
        _envelope,
        _hollow_box,
        verify,
    )
    from tests.retention_support import step

    envelope = _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    assert verify(app, case)["passed"] is True
    case["quality"] = accounts.token("quality")
    for target, who in (("verified", "engineer"), ("awaiting_approval", "engineer"),
                        ("approved", "clinician"), ("released", "quality")):
        totp = {"totp_code": accounts.totp("quality")} if who == "quality" else {}
        assert step(app, case[who], case["id"], to=target, password=PASSWORD,
                    **totp).status_code == 200
    assert step(app, case["engineer"], case["id"], to="delivered",
                delivered_on=date.today().isoformat()).status_code == 200
    store = _store(app)
    with app.app_context():
        row = _case(case["id"])
        expected = datetime.combine(date.today().replace(year=date.today().year + 20), time(),
                                    UTC)
        assert row.retain_until == expected  # 20 years after delivery (the test policy)
        kinds = {o.kind for o in _objects(row)}
        assert {"stored_file", "signature", "report"} <= kinds
        for obj in _objects(row):
            assert store.head(obj.key, version_id=obj.version_id).retain_until == expected
        version = db.session.get(EnvelopeVersion, envelope["id"])
        assert version is not None and version.signature_id is not None
        signature = db.session.get(Signature, version.signature_id)
        assert signature is not None
        # Approved with a 15-year floor; the case that used it moved it to the case's deadline.
        assert signature.signed_at.replace(year=signature.signed_at.year + 15) < expected
        assert store.head(signature.record_key,
                          version_id=signature.record_version_id).retain_until == expected


def test_a_missing_object_is_named_and_the_others_are_still_extended(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case_ref = signed_case(app, accounts, catalogue)
    store = _store(app)
    with app.app_context():
        lost = _objects(_case(case_ref["id"]))[0]
        # Someone with shell access removes a file of the local store (only S3 COMPLIANCE
        # prevents that): the metadata goes, so the store no longer knows the object.
        (Path(app.config["PDM_STORAGE_PATH"]) / "meta" / (lost.key + ".json")).unlink()
    release(app, case_ref)
    with app.app_context():
        case = _case(case_ref["id"])
        event = db.session.scalar(sa.select(AuditEvent).where(
            AuditEvent.action == "retention.extended").order_by(AuditEvent.id.desc()))
        assert event is not None and event.after is not None
        assert lost.key in event.after["objects_missing"]
        for obj in _objects(case):
            if obj.key != lost.key:
                assert store.head(obj.key, version_id=obj.version_id).retain_until == \
                    case.retain_until
        view = svc.case_retention(db.session, case, store)
        assert any(lost.key in p for p in view["storage"]["problems"])
