"""Cost of the hash-chained audit trail on the embedded default (SQLite + local store), or on
PostgreSQL with ``PDM_BENCH_DATABASE_URL=postgresql+psycopg://127.0.0.1/pdm_bench_audit``.

Measures, per committed transaction of one event: a chained append (head row update-first,
canonical JSON, SHA-256) against a plain insert of the same row with the chain fields precomputed
(what an unchained trail would cost); then ``verify_audit`` throughput and one checkpoint.
Last line: ``events=<n> append_chained_ms=<a> append_plain_ms=<b> verify_events_per_s=<c>
checkpoint_ms=<d>``.

Run: .venv/bin/python benchmarks/bench_audit.py [N]
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from pdm_records import create_app
    from pdm_records.clock import utcnow
    from pdm_records.extensions import db
    from pdm_records.models import AuditEvent
    from pdm_records.services import audit_trail
    from pdm_records.services.audit import record_event

    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PDM_INSTANCE_PATH"] = tmp
        overrides = {}
        if os.environ.get("PDM_BENCH_DATABASE_URL"):
            url = os.environ["PDM_BENCH_DATABASE_URL"]
            overrides = {"PDM_DATABASE_URL": url, "SQLALCHEMY_DATABASE_URI": url}
        app = create_app(overrides)
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            after = {"status": "submitted", "sha256": "a" * 64, "size": 123456,
                     "original_name": "plan.stl", "retain_until": "2041-01-01T00:00:00.000000Z"}
            chained = []
            for i in range(n):
                t0 = time.perf_counter()
                record_event(db.session, actor=None, action="bench.chained", target_type="case",
                             target_id=i, case_id=None, before={"status": "draft"}, after=after)
                db.session.commit()
                chained.append(time.perf_counter() - t0)
            plain = []
            base = 10**12  # far above the chain's seqs (the rows are removed below)
            for i in range(n):
                t0 = time.perf_counter()
                db.session.add(AuditEvent(seq=base + i, prev_hash="0" * 64, hash="0" * 64,
                                          occurred_at=utcnow(), actor_label="system",
                                          action="bench.plain", target_type="case",
                                          target_id=str(i), before={"status": "draft"},
                                          after=after))
                db.session.commit()
                plain.append(time.perf_counter() - t0)
            # The plain rows are not part of the chain: take them out again (a benchmark
            # database, so the append-only trigger is dropped for it).
            with db.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("DROP TRIGGER audit_event_append_only ON audit_event"))
                else:
                    conn.execute(sa.text("DROP TRIGGER audit_event_no_delete"))
                conn.execute(sa.text("DELETE FROM audit_event WHERE seq >= :b"), {"b": base})
            store = app.extensions["pdm_store_factory"]()
            t0 = time.perf_counter()
            report = audit_trail.verify_audit(db.session, store)
            verify_s = time.perf_counter() - t0
            assert report.ok, report.as_dict()
            t0 = time.perf_counter()
            audit_trail.take_checkpoint(db.session, store)
            db.session.commit()
            checkpoint_ms = (time.perf_counter() - t0) * 1000
            db.engine.dispose()
    chained_ms = statistics.median(chained) * 1000
    plain_ms = statistics.median(plain) * 1000
    print(f"append one event and commit: chained median {chained_ms:.2f} ms, "
          f"p95 {statistics.quantiles(chained, n=20)[-1] * 1000:.2f} ms; plain insert median "
          f"{plain_ms:.2f} ms ({n} each)")
    print(f"verify-audit: {n} events in {verify_s * 1000:.0f} ms; checkpoint "
          f"{checkpoint_ms:.0f} ms (verifies the events since the last one)")
    print(f"events={n} append_chained_ms={chained_ms:.2f} append_plain_ms={plain_ms:.2f} "
          f"verify_events_per_s={n / verify_s:.0f} checkpoint_ms={checkpoint_ms:.0f}")


if __name__ == "__main__":
    main()
