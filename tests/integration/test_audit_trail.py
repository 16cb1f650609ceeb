"""The hash-chained, append-only audit trail and its checkpoints (issue 6 §1-2; DOMAIN.md §6,
21 CFR Part 11 §11.10(e): secure, computer-generated, time-stamped audit trails whose changes
never obscure previous values).

Tampering is simulated the way a database administrator would do it: the append-only triggers
are dropped first, then rows are edited, deleted, inserted or the whole table is rebuilt.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records.audit_chain import GENESIS_HASH, event_content, event_hash, verify_chain
from pdm_records.clock import utcnow
from pdm_records.extensions import db
from pdm_records.models import AuditChainHead, AuditCheckpoint, AuditEvent
from pdm_records.services import audit_trail
from pdm_records.services.audit import record_event
from pdm_records.storage import ObjectStore
from tests.conftest import ON_POSTGRES

Dba = Callable[[], None]


def store(app: Flask) -> ObjectStore:
    result: ObjectStore = app.extensions["pdm_store_factory"]()
    return result


def append(app: Flask, n: int, action: str = "test.event", **values: Any) -> None:
    with app.app_context():
        for i in range(n):
            record_event(db.session, actor=None, action=action, target_type="test",
                         target_id=i, after={"i": i, **values})
        db.session.commit()


def checkpoint(app: Flask) -> AuditCheckpoint | None:
    with app.app_context():
        row = audit_trail.take_checkpoint(db.session, store(app))
        db.session.commit()
        if row is not None:
            db.session.refresh(row)
            db.session.expunge(row)
        return row


def sql(app: Flask, *statements: str, **params: Any) -> None:
    with app.app_context(), db.engine.begin() as conn:
        for statement in statements:
            conn.execute(sa.text(statement), params)


def migration() -> Any:
    """The module of migration 0007 (found by what it defines: the integrator renumbers)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from tests.conftest import ROOT

    cfg = Config()
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return next(s for s in ScriptDirectory.from_config(cfg).walk_revisions()
                if hasattr(s.module, "APPEND_ONLY"))


@pytest.fixture
def drop_triggers(app: Flask) -> Iterator[Callable[[], None]]:
    """What a DBA with DDL rights can do first. The triggers come back afterwards (on
    PostgreSQL the test database outlives the test)."""
    dialect = "postgresql" if ON_POSTGRES else "sqlite"
    module = migration().module

    def drop() -> None:
        sql(app, *module.drop_trigger_sql(dialect))

    yield drop
    sql(app, *module.drop_trigger_sql(dialect))
    sql(app, *module.trigger_sql(dialect))


def verify(app: Flask) -> tuple[int, dict[str, Any]]:
    result = app.test_cli_runner().invoke(args=["pdm", "verify-audit", "--json"])
    assert "Traceback" not in result.output
    return result.exit_code, json.loads(result.stdout)


def events(app: Flask) -> list[dict[str, Any]]:
    with app.app_context():
        return [dict(e) for e in audit_trail.iter_events(db.session)]


def test_events_form_one_gap_free_chain(app: Flask) -> None:
    append(app, 5)
    rows = events(app)
    assert [e["seq"] for e in rows] == [1, 2, 3, 4, 5]
    assert rows[0]["prev_hash"] == GENESIS_HASH
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(rows))
    assert verify_chain(rows).ok
    with app.app_context():
        head = db.session.get(AuditChainHead, 1)
        assert head is not None and (head.seq, head.hash) == (5, rows[-1]["hash"])
    code, report = verify(app)
    assert code == 0 and report["ok"] and report["head_seq"] == 5


def test_a_rolled_back_transaction_leaves_no_gap(app: Flask) -> None:
    append(app, 2)
    with app.app_context():
        record_event(db.session, actor=None, action="lost", target_type="test")
        db.session.rollback()
    append(app, 1)
    assert [e["seq"] for e in events(app)] == [1, 2, 3]
    assert verify(app)[0] == 0


@pytest.mark.parametrize("table", ["audit_event", "audit_checkpoint"])
def test_the_database_refuses_update_and_delete(app: Flask, table: str) -> None:
    append(app, 3)
    assert checkpoint(app) is not None
    for statement in (f"UPDATE {table} SET hash = :h", f"DELETE FROM {table}"):  # noqa: S608
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            sql(app, statement, h="f" * 64)
    assert verify(app)[0] == 0


def test_concurrent_appends_never_fork_the_chain(app: Flask) -> None:
    """Several connections append at once (PostgreSQL: row lock on the head; SQLite: the
    write lock taken by the update-first head read)."""
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            with app.app_context():
                for i in range(15):
                    record_event(db.session, actor=None, action="concurrent", target_type="t",
                                 target_id=f"{k}-{i}")
                    if i % 3 == 0:  # some transactions hold several events
                        record_event(db.session, actor=None, action="concurrent",
                                     target_type="t", target_id=f"{k}-{i}b")
                    db.session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    rows = events(app)
    assert [e["seq"] for e in rows] == list(range(1, 6 * 20 + 1))
    assert len({e["target_id"] for e in rows}) == 120
    assert verify_chain(rows).ok
    assert verify(app)[0] == 0


def test_a_checkpoint_is_canonical_json_in_write_once_storage(app: Flask) -> None:
    append(app, 4)
    row = checkpoint(app)
    assert row is not None and row.seq == 4 and row.key == "audit/checkpoints/000000000004.json"
    info = store(app).head(row.key)
    assert info.sha256 == row.sha256
    assert info.retain_until is not None
    assert info.retain_until >= row.created_at + timedelta(days=365 * 15)
    body = json.loads(store(app).read(row.key, version_id=row.version_id, sha256=row.sha256))
    assert body["seq"] == 4 and body["hash"] == events(app)[-1]["hash"] and body["count"] == 4
    assert checkpoint(app) is None  # nothing new
    append(app, 1)
    later = checkpoint(app)
    assert later is not None and later.seq == 5


def test_an_orphaned_checkpoint_object_is_used_and_then_indexed(app: Flask) -> None:
    """Object first, then the row: a row that did not commit leaves a harmless extra object."""
    append(app, 3)
    with app.app_context():
        row = audit_trail.take_checkpoint(db.session, store(app))
        assert row is not None
        db.session.rollback()
        assert db.session.query(AuditCheckpoint).count() == 0
    code, report = verify(app)
    assert code == 0 and report["checkpoints"] == 1
    row = checkpoint(app)  # the same key again: the existing object is indexed
    assert row is not None and row.seq == 3
    code, report = verify(app)
    assert code == 0 and report["checkpoints"] == 1


def test_checkpoints_are_due_after_n_events_or_t_seconds(app: Flask) -> None:
    with app.app_context():
        assert not audit_trail.checkpoint_due(db.session, every=3, seconds=60)  # empty trail
    append(app, 2)
    with app.app_context():
        now = utcnow()
        assert not audit_trail.checkpoint_due(db.session, every=3, seconds=60, now=now)
        assert audit_trail.checkpoint_due(db.session, every=3, seconds=60,
                                          now=now + timedelta(seconds=61))
    append(app, 1)
    with app.app_context():
        assert audit_trail.checkpoint_due(db.session, every=3, seconds=60)
    assert checkpoint(app) is not None
    with app.app_context():
        assert not audit_trail.checkpoint_due(db.session, every=3, seconds=60,
                                              now=utcnow() + timedelta(days=1))


@pytest.mark.parametrize("config_overrides", [{"PDM_AUDIT_CHECKPOINT_EVERY": 3}])
def test_the_worker_takes_a_due_checkpoint(app: Flask, config_overrides: dict[str, Any]) -> None:
    append(app, 3)
    result = app.test_cli_runner().invoke(args=["pdm", "worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "audit checkpoint at event 3" in result.output
    with app.app_context():
        assert [c.seq for c in db.session.query(AuditCheckpoint)] == [3]


def test_audit_checkpoint_command(app: Flask) -> None:
    runner = app.test_cli_runner()
    empty = runner.invoke(args=["pdm", "audit-checkpoint"])
    assert empty.exit_code == 0 and "empty" in empty.output
    append(app, 2)
    first = runner.invoke(args=["pdm", "audit-checkpoint"])
    assert first.exit_code == 0, first.output
    assert "checkpoint: event 2" in first.output and "audit/checkpoints/" in first.output
    again = runner.invoke(args=["pdm", "audit-checkpoint"])
    assert again.exit_code == 0 and "checkpointed already" in again.output


def test_no_checkpoint_is_taken_over_a_broken_chain(app: Flask, drop_triggers: Dba) -> None:
    append(app, 4)
    drop_triggers()
    sql(app, "UPDATE audit_event SET action = 'rewritten' WHERE seq = 2")
    result = app.test_cli_runner().invoke(args=["pdm", "audit-checkpoint"])
    assert result.exit_code == 1
    assert "broken" in result.output and "event 2: hash mismatch" in result.output
    with app.app_context():
        assert db.session.query(AuditCheckpoint).count() == 0


def _break(report: dict[str, Any]) -> tuple[int, str]:
    assert not report["ok"] and report["first_break"], report
    return report["first_break"]["seq"], report["first_break"]["reason"]


def test_verify_audit_names_an_edited_event(app: Flask, drop_triggers: Dba) -> None:
    append(app, 6)
    drop_triggers()
    sql(app, "UPDATE audit_event SET actor_label = 'someone else' WHERE seq = 4")
    code, report = verify(app)
    assert code == 1 and _break(report) == (4, "hash mismatch")
    human = app.test_cli_runner().invoke(args=["pdm", "verify-audit"])
    assert human.exit_code == 1 and "BROKEN at event 4: hash mismatch" in human.output


def test_verify_audit_names_a_deleted_event(app: Flask, drop_triggers: Dba) -> None:
    append(app, 6)
    drop_triggers()
    sql(app, "DELETE FROM audit_event WHERE seq = 3")
    code, report = verify(app)
    assert code == 1 and _break(report) == (3, "gap")


def test_verify_audit_names_an_inserted_event(app: Flask, drop_triggers: Dba) -> None:
    append(app, 6)
    rows = events(app)
    drop_triggers()
    # Make room after event 3 (two steps: seq is unique), then insert a well-formed forgery.
    sql(app, "UPDATE audit_event SET seq = seq + 1000 WHERE seq > 3",
        "UPDATE audit_event SET seq = seq - 999 WHERE seq > 1000")
    forged = event_content(seq=4, prev_hash=rows[2]["hash"], occurred_at=rows[2]["occurred_at"],
                           actor_id=None, actor_label="system", action="forged",
                           target_type="test", target_id=None, case_id=None, before=None,
                           after=None, remote_addr=None)
    with app.app_context():
        db.session.add(AuditEvent(**{**forged, "occurred_at": rows[2]["occurred_at"]},
                                  hash=event_hash(forged)))
        db.session.commit()
    code, report = verify(app)
    assert code == 1 and _break(report) == (5, "prev_hash mismatch")


def test_an_insert_needs_no_dropped_trigger_but_is_still_caught(app: Flask) -> None:
    """Appending a forged event with a wrong link is possible without DDL; it does not chain."""
    append(app, 3)
    with app.app_context():
        db.session.add(AuditEvent(seq=4, prev_hash=GENESIS_HASH, hash="0" * 64,
                                  occurred_at=utcnow(), actor_label="x", action="forged",
                                  target_type="test"))
        db.session.commit()
    code, report = verify(app)
    assert code == 1 and _break(report) == (4, "prev_hash mismatch")


def _rebuild(app: Flask, changed_seq: int, drop_triggers: Dba) -> None:
    """Rewrite the whole table as a consistent chain in which one event says something else."""
    rows = events(app)
    drop_triggers()
    sql(app, "DELETE FROM audit_event")
    prev = GENESIS_HASH
    with app.app_context():
        for row in rows:
            values = {k: row[k] for k in row if k not in {"hash", "prev_hash"}}
            if row["seq"] == changed_seq:
                values["after"] = {"status": "approved long ago"}
            content = event_content(**{**values, "prev_hash": prev})
            prev = event_hash(content)
            db.session.add(AuditEvent(**{**values, "prev_hash": content["prev_hash"]},
                                      hash=prev))
        db.session.execute(sa.update(AuditChainHead).values(seq=rows[-1]["seq"], hash=prev))
        db.session.commit()
    assert verify_chain(events(app)).ok  # consistent: the chain alone cannot tell


def test_a_consistently_rebuilt_table_is_caught_by_the_checkpoints(app: Flask,
                                                                  drop_triggers: Dba) -> None:
    append(app, 5)
    assert checkpoint(app) is not None
    append(app, 3)
    _rebuild(app, 2, drop_triggers)
    code, report = verify(app)
    assert code == 1 and _break(report) == (5, "checkpoint mismatch")
    assert "audit/checkpoints/000000000005.json" in report["first_break"]["detail"]


def test_deleting_the_checkpoint_rows_too_hides_nothing(
        app: Flask, drop_triggers: Dba) -> None:
    append(app, 5)
    assert checkpoint(app) is not None
    _rebuild(app, 1, drop_triggers)
    sql(app, "DELETE FROM audit_checkpoint")
    code, report = verify(app)
    assert code == 1 and _break(report) == (5, "checkpoint mismatch")
    assert "unindexed checkpoint" in report["first_break"]["detail"]


def test_events_removed_from_the_end_are_caught(app: Flask, drop_triggers: Dba) -> None:
    append(app, 6)
    assert checkpoint(app) is not None
    rows = events(app)
    drop_triggers()
    sql(app, "DELETE FROM audit_event WHERE seq > 4",
        "UPDATE audit_chain_head SET seq = 4, hash = :h", h=rows[3]["hash"])
    code, report = verify(app)
    assert code == 1 and _break(report) == (5, "checkpoint mismatch")


def test_a_checkpoint_row_that_disagrees_with_its_object_is_a_problem(
        app: Flask, drop_triggers: Dba) -> None:
    append(app, 3)
    assert checkpoint(app) is not None
    drop_triggers()
    sql(app, "UPDATE audit_checkpoint SET hash = :h", h="e" * 64)
    code, report = verify(app)
    assert code == 1 and not report["first_break"]
    assert any("checkpoint row" in p for p in report["problems"])


def test_existing_events_are_chained_by_the_migration(app: Flask, tmp_path: Any) -> None:
    """Events written before migration 0007 get their chain, in id order, then the triggers."""
    from flask_migrate import downgrade, upgrade

    from tests.conftest import ROOT

    ours = migration()
    with app.app_context():
        downgrade(directory=str(ROOT / "migrations"), revision=str(ours.down_revision))
        db.engine.dispose()
    legacy = sa.table("audit_event", sa.column("occurred_at", sa.DateTime(timezone=True)),
                      sa.column("actor_label"), sa.column("action"), sa.column("target_type"),
                      sa.column("target_id"), sa.column("after", sa.JSON()))
    base = utcnow()
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(legacy.insert(), [
            {"occurred_at": base + timedelta(seconds=i), "actor_label": "system",
             "action": "legacy", "target_type": "test", "target_id": str(i),
             "after": {"i": i, "x": [1.5, "é"]}} for i in range(7)])
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()
    rows = events(app)
    assert [r["seq"] for r in rows] == list(range(1, 8))
    assert [r["target_id"] for r in rows] == [str(i) for i in range(7)]
    assert verify_chain(rows).ok
    append(app, 1)  # appends continue the migrated chain
    assert verify(app)[0] == 0
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):
        sql(app, "DELETE FROM audit_event")


def test_doctor_reports_the_chain_head_and_the_last_checkpoint(app: Flask) -> None:
    append(app, 2)
    assert checkpoint(app) is not None
    result = app.test_cli_runner().invoke(args=["pdm", "doctor"])
    assert "audit trail: head event 2" in result.output
    assert "last checkpoint at event 2" in result.output
    with app.app_context():
        ok, text = audit_trail.status_check(
            db.session, {"PDM_AUDIT_CHECKPOINT_SECONDS": 60}, now=utcnow())
        assert ok
    append(app, 1)
    with app.app_context():
        ok, text = audit_trail.status_check(
            db.session, {"PDM_AUDIT_CHECKPOINT_SECONDS": 60},
            now=utcnow() + timedelta(minutes=5))
        assert not ok and "1 event(s) have waited" in text


def test_long_chains_show_progress_on_stderr(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    from pdm_records import cli_audit

    append(app, 3)
    monkeypatch.setattr(cli_audit, "PROGRESS_FROM", 2)
    result = app.test_cli_runner().invoke(args=["pdm", "verify-audit", "--json"])
    assert result.exit_code == 0, result.output
    assert "verifying the audit chain" in result.stderr
    assert json.loads(result.stdout)["events"] == 3
