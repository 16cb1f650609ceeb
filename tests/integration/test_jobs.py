"""The job runner: atomic claims, crash recovery, failures recorded (issue: envelopes §5)."""

from __future__ import annotations

import threading
from datetime import timedelta

from flask import Flask

from pdm_records.clock import utcnow
from pdm_records.extensions import db
from pdm_records.models import Job, JobStatus, User
from pdm_records.services import jobs
from tests.conftest import Accounts


def _enqueue(app: Flask, accounts: Accounts, n: int, kind: str = "noop") -> list[int]:
    account = accounts.user("engineer")
    with app.app_context():
        actor = db.session.get(User, account.id)
        assert actor is not None
        ids = [jobs.enqueue(db.session, kind=kind, payload={"i": i}, actor=actor).id
               for i in range(n)]
        db.session.commit()
    return ids


def test_concurrent_workers_never_claim_the_same_job(app: Flask, accounts: Accounts) -> None:
    ids = _enqueue(app, accounts, 30)
    claimed: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        try:
            with app.app_context():
                while True:
                    job = jobs.claim_next(db.session, name)
                    db.session.commit()
                    if job is None:
                        return
                    with lock:
                        claimed.append(job.id)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    with app.app_context():
        assert {j.status for j in db.session.query(Job)} == {JobStatus.RUNNING}
        assert all(j.attempts == 1 for j in db.session.query(Job))


def test_a_job_of_a_crashed_worker_is_retried_then_failed(app: Flask,
                                                          accounts: Accounts) -> None:
    [job_id] = _enqueue(app, accounts, 1)
    with app.app_context():
        for attempt in (1, 2):
            job = jobs.claim_next(db.session, "crashing-worker")
            assert job is not None and job.id == job_id and job.attempts == attempt
            db.session.commit()
            later = utcnow() + timedelta(hours=1)
            assert jobs.recover_stale(db.session, timeout=timedelta(minutes=15), now=later) == 1
            db.session.commit()
        job = db.session.get(Job, job_id)
        assert job is not None
        assert job.status is JobStatus.FAILED and "interrupted 2 times" in (job.error or "")


def test_an_unknown_job_kind_fails_with_a_reason(app: Flask, accounts: Accounts) -> None:
    _enqueue(app, accounts, 1, kind="no-such-kind")
    result = app.test_cli_runner().invoke(args=["pdm", "worker", "--once"])
    assert result.exit_code == 0
    assert "failed: no handler for job kind 'no-such-kind'" in result.output
