"""Time the quality search at 100,000 cases on PostgreSQL (issue #6 §5; target p95 <= 50 ms).

Recreates the database (default ``postgresql://127.0.0.1/pdm_bench``; or ``--database-url`` /
``PDM_BENCH_DATABASE_URL``) through the migrations, bulk-seeds cases with their patients,
request revisions, design iterations, stored files (some under legal hold) and verification
reports with COPY (not timed), runs ANALYZE, then runs a fixed query mix through
``services/search.py`` (count + page + hold marks, as the page and the API do), each query
``--repeat`` times after one warm-up run:

- code prefix: a patient-code prefix that matches a handful of cases;
- status + date range: released cases created within one year;
- expiring: retain-until within the next 90 days;
- device type + verification failed;
- page 50 of a broad query (every patient-matched case, newest first) with its total.

Prints per-query p50/p95 and, with ``--explain``, EXPLAIN (ANALYZE, BUFFERS) of every statement
of each query. Last line: ``cases=<n> search_p50_ms=<x> search_p95_ms=<y>``.

Run: .venv/bin/python benchmarks/bench_search.py [--cases 100000] [--repeat 20] [--explain]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_URL = "postgresql://127.0.0.1/pdm_bench"
STATUS_WEIGHTS = {"delivered": 45, "released": 10, "approved": 3, "awaiting_approval": 3,
                  "verified": 3, "in_design": 8, "accepted": 4, "submitted": 6, "draft": 5,
                  "changes_requested": 3, "rejected": 4, "cancelled": 6}
DESIGNED = {"in_design", "verified", "awaiting_approval", "approved", "released", "delivered"}
DEVICE_TYPES = [  # name, category, implantable
    ("Cranial implant", "patient_matched", True),
    ("Orbital floor implant", "patient_matched", True),
    ("Mandible plate", "custom_made", True),
    ("Acetabular cup", "patient_matched", True),
    ("Knee cutting guide", "patient_matched", False),
    ("Dental drill guide", "patient_matched", False),
    ("Wrist orthosis", "adaptable", False),
    ("Ankle orthosis", "custom_made", False),
]
TABLES = ("site", "user", "device_type", "envelope_version", "patient", "case",
          "request_revision", "stored_file", "design_iteration", "verification_report")
PASSWORD = "benchmark passphrase 1"  # a throw-away benchmark account


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def sqlalchemy_url(url: str) -> sa.engine.URL:
    parsed = sa.engine.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def recreate(url: sa.engine.URL) -> None:
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    admin.dispose()


def seed(engine: sa.Engine, n_cases: int, rng: random.Random) -> dict[str, Any]:
    """Bulk-load n_cases cases and what the search filters look at, with COPY."""
    now = datetime.now(UTC)
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT id FROM \"user\" WHERE email = 'quality@bench.example'")
        quality_id = cur.fetchone()[0]
        sites = list(range(1, 21))
        cur.execute("INSERT INTO site (id, name, kind, address, country, share_cases, created_at)"
                    " SELECT g, 'Hospital ' || g, 'health_institution', '', 'DE', false, now()"
                    " FROM generate_series(1, 20) g")
        cur.execute("INSERT INTO \"user\" (id, email, active, fs_uniquifier, printed_name,"
                    " registration_number, site_id, login_count, create_datetime,"
                    " update_datetime) SELECT 1000 + g, 'clin' || g || '@bench.example', true,"
                    " md5(g::text), 'Dr Bench ' || g, 'REG-' || g, 1 + g % 20, 0, now(), now()"
                    " FROM generate_series(1, 200) g")
        device_types = []
        for i, (name, category, implantable) in enumerate(DEVICE_TYPES, start=1):
            cur.execute("INSERT INTO device_type (id, name, category, implantable,"
                        " expected_lifetime_years, description, parameters, active, created_at)"
                        " VALUES (%s, %s, %s, %s, 10, '', '[]', true, now())",
                        (i, name, category, implantable))
            cur.execute("INSERT INTO envelope_version (id, device_type_id, version, status,"
                        " definition, notes, content_sha256, author_id, created_at,"
                        " approved_at) VALUES (%s, %s, 1, 'approved', '{}', '', %s, %s, now(),"
                        " now())", (i, i, f"{i:064x}", quality_id))
            device_types.append((i, category, implantable))
        statuses = list(STATUS_WEIGHTS)
        weights = list(STATUS_WEIGHTS.values())
        file_id = iteration_id = report_id = 0
        held_cases = 0
        with (cur.copy("COPY patient (id, code, institution_id, created_at) FROM STDIN")
              as patients):
            codes = rng.sample(range(10_000_000), n_cases)
            site_of = [rng.choice(sites) for _ in range(n_cases)]
            for i in range(n_cases):
                patients.write_row((i + 1, f"P{codes[i]:07d}", site_of[i], now))
        case_rows, revision_rows, file_rows, iteration_rows, report_rows = [], [], [], [], []
        for i in range(n_cases):
            case_id = i + 1
            device_id, _category, implantable = rng.choice(device_types)
            created = now - timedelta(days=rng.uniform(0, 3650))
            status = rng.choices(statuses, weights)[0]
            released = (created + timedelta(days=rng.uniform(5, 60))
                        if status in ("released", "delivered") else None)
            if released is not None and released > now:
                released = now
            retain = created + timedelta(days=365 * (15 if implantable else 5) + 4)
            verification = "none"
            if status in DESIGNED:
                verification = "failed" if (status == "in_design" and rng.random() < 0.4) \
                    else "passed"
            prescriber = 1001 + rng.randrange(200)
            case_rows.append((case_id, f"PDM-{created.year}-{case_id:06d}", status, case_id,
                              device_id, site_of[i], prescriber, created, created, retain,
                              released, verification))
            revision_rows.append((case_id, case_id, 1, "draft" if status == "draft" else
                                  "signed", "{}", prescriber, created))
            hold = rng.random() < 0.005
            if status in DESIGNED or hold:
                file_id += 1
                file_rows.append((file_id, case_id, "local", f"records/{case_id}/design-1",
                                  f"{case_id:064x}", 1000, "model/stl", "design.stl", "record",
                                  retain, hold, created))
                held_cases += hold
            if status in DESIGNED:
                iteration_id += 1
                iteration_rows.append((iteration_id, case_id, 1, case_id, file_id, "mm", "",
                                       prescriber, created))
                report_id += 1
                report_rows.append((report_id, case_id, iteration_id, device_id,
                                    f"{device_id:064x}", f"{case_id:064x}",
                                    verification == "passed", "{}", f"{report_id:064x}",
                                    f"records/{case_id}/verification-{report_id}.json",
                                    quality_id, created))
        copies = [
            ('COPY "case" (id, number, status, patient_id, device_type_id, institution_id,'
             ' prescriber_id, created_at, updated_at, retain_until, released_at,'
             ' verification_result) FROM STDIN', case_rows),
            ("COPY request_revision (id, case_id, revision, status, content, created_by_id,"
             " created_at) FROM STDIN", revision_rows),
            ("COPY stored_file (id, case_id, backend, key, sha256, size, media_type,"
             " original_name, state, retain_until, legal_hold, created_at) FROM STDIN",
             file_rows),
            ("COPY design_iteration (id, case_id, number, based_on_revision_id, file_id, units,"
             " notes, created_by_id, created_at) FROM STDIN", iteration_rows),
            ("COPY verification_report (id, case_id, iteration_id, envelope_version_id,"
             " envelope_sha256, mesh_sha256, passed, report, report_sha256, record_key,"
             " created_by_id, created_at) FROM STDIN", report_rows),
        ]
        for statement, rows in copies:
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        for table in TABLES:  # a fixed list, not input
            cur.execute(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'),"  # noqa: S608
                        f" (SELECT max(id) FROM \"{table}\"))")
        raw.commit()
        # What autovacuum does soon after a bulk load: statistics and the visibility map
        # (index-only scans for the counts).
        raw.driver_connection.autocommit = True
        cur.execute("VACUUM ANALYZE")
        raw.driver_connection.autocommit = False
        sample_codes = [f"P{codes[rng.randrange(n_cases)]:07d}"[:5] for _ in range(200)]
    finally:
        raw.close()
    return {"device_types": device_types, "codes": sample_codes, "held": held_cases,
            "files": file_id, "reports": report_id}


def reuse(engine: sa.Engine, rng: random.Random) -> dict[str, Any]:
    """What the query mix needs, read from an already seeded database."""
    with engine.connect() as conn:
        cases = conn.scalar(sa.text('SELECT count(*) FROM "case"')) or 0
        device_types = [tuple(r) for r in conn.execute(sa.text(
            "SELECT id, category, implantable FROM device_type ORDER BY id"))]
        codes = [r[0][:5] for r in conn.execute(sa.text(
            "SELECT code FROM patient ORDER BY random() LIMIT 200"))]
    return {"cases": cases, "device_types": device_types, "codes": codes}


def query_mix(seeded: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """name -> a function returning fresh filter arguments for one run."""
    today = date.today()
    patient_matched = [d for d, c, _ in seeded["device_types"] if c == "patient_matched"]

    def year_window() -> dict[str, Any]:
        start = today - timedelta(days=rng.randrange(365, 3650))
        return {"status": ["released"], "created_from": start.isoformat(),
                "created_to": (start + timedelta(days=365)).isoformat()}

    return {
        "code_prefix": lambda: {"patient_code": rng.choice(seeded["codes"])},
        "status_date_range": year_window,
        "expiring_90_days": lambda: {"expiring_within_days": 90, "sort": "retain_until"},
        "device_type_failed": lambda: {"device_type_id": rng.choice(patient_matched),
                                       "verification": "failed"},
        "broad_page_50": lambda: {"category": "patient_matched", "page": 50,
                                  "sort": "-created_at"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("PDM_BENCH_DATABASE_URL",
                                                                 DEFAULT_URL))
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN (ANALYZE, BUFFERS) of each query's statements")
    parser.add_argument("--reuse", action="store_true",
                        help="skip recreating and seeding: search the database as it is")
    options = parser.parse_args()

    from flask_migrate import upgrade

    from pdm_records import create_app
    from pdm_records.extensions import db
    from pdm_records.models import User
    from pdm_records.schemas.search import CaseSearchSchema
    from pdm_records.services import users
    from pdm_records.services.search import search_cases

    url = sqlalchemy_url(options.database_url)
    rng = random.Random(20261203)
    if not options.reuse:
        recreate(url)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PDM_INSTANCE_PATH"] = tmp
        app = create_app({"PDM_DATABASE_URL": url.render_as_string(hide_password=False),
                          "SQLALCHEMY_DATABASE_URI": url.render_as_string(hide_password=False)})
        with app.app_context():
            if options.reuse:
                seeded = reuse(db.engine, rng)
                quality_id = db.session.scalar(sa.select(User.id).where(
                    User.email == "quality@bench.example"))
                options.cases = seeded["cases"]
            else:
                upgrade(directory=str(ROOT / "migrations"))
                users.ensure_roles(db.session)
                quality = users.create_user(db.session, actor=None,
                                            email="quality@bench.example", password=PASSWORD,
                                            printed_name="Bench Quality", roles=["quality"])
                quality_id = quality.id  # before the commit: no snapshot stays open, so
                db.session.commit()  # VACUUM can mark the bulk-loaded pages all-visible
                t0 = time.perf_counter()
                seeded = seed(db.engine, options.cases, rng)
                print(f"seeded {options.cases} cases, {seeded['files']} stored files "
                      f"({seeded['held']} held), {seeded['reports']} verification reports in "
                      f"{time.perf_counter() - t0:.1f} s (not timed)")
            db.session.expire_all()
            actor = db.session.get(User, quality_id)
            assert actor is not None
            schema = CaseSearchSchema()
            all_times: list[float] = []
            for name, make in query_mix(seeded, rng).items():
                times, totals = [], []
                for run in range(options.repeat + 1):
                    filters = schema.load(make())
                    db.session.rollback()  # a fresh transaction per search, as per request
                    db.session.expunge_all()
                    actor = db.session.get(User, quality_id)
                    start = time.perf_counter()
                    result = search_cases(db.session, actor, filters)
                    elapsed = (time.perf_counter() - start) * 1000
                    if run:  # the first run warms up
                        times.append(elapsed)
                        totals.append(result.total)
                all_times.extend(times)
                print(f"{name:20s} p50={statistics.median(times):7.2f} ms "
                      f"p95={percentile(times, 95):7.2f} ms max={max(times):7.2f} ms "
                      f"(total ~{int(statistics.median(totals))}, page of "
                      f"{len(result.items)})")
                if options.explain:
                    explain(db.engine, actor, schema.load(make()))
    print(f"cases={options.cases} search_p50_ms={statistics.median(all_times):.2f} "
          f"search_p95_ms={percentile(all_times, 95):.2f}")


def explain(engine: sa.Engine, actor: Any, filters: Any) -> None:
    """EXPLAIN ANALYZE the statements the service sends for one search."""
    from sqlalchemy import event

    from pdm_records.extensions import db
    from pdm_records.services.search import search_cases

    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        db.session.rollback()
        search_cases(db.session, db.session.merge(actor), filters)
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        for statement, parameters in captured:
            cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
            print("    " + statement.replace("\n", " ")[:300])
            for (line,) in cur.fetchall():
                print("      " + line)
        raw.rollback()
    finally:
        raw.close()


if __name__ == "__main__":
    main()
