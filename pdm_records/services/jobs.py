"""The job runner behind an interface: enqueue, claim atomically, run, recover from crashes.

Claims are a conditional UPDATE (``… WHERE id = :id AND status = 'queued'``): of two workers
racing for one job exactly one sees a row count of 1, on SQLite and PostgreSQL alike. A running
job whose worker died (its claim older than the timeout) is queued again while attempts remain,
otherwise marked failed with the reason, so nothing stays "running" forever.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from ..clock import utcnow
from ..errors import DomainError, ServiceUnavailable
from ..models import Case, Job, JobStatus, User
from ..storage import ObjectStore
from . import DbSession
from .audit import record_event

log = logging.getLogger(__name__)

Handler = Callable[[DbSession, ObjectStore, Job, User], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[kind] = fn
        return fn
    return register


def enqueue(session: DbSession, *, kind: str, payload: dict[str, Any], actor: User,
            case_id: int | None = None) -> Job:
    job = Job(kind=kind, payload=payload, status=JobStatus.QUEUED, case_id=case_id,
              created_by_id=actor.id)
    session.add(job)
    session.flush()
    record_event(session, actor=actor, action="job.queued", target_type="job", target_id=job.id,
                 case_id=case_id, after={"kind": kind, "payload": payload})
    return job


def claim_next(session: DbSession, worker: str, now: datetime | None = None) -> Job | None:
    """Claim the oldest queued job for ``worker`` (committed by the caller), or None."""
    now = now or utcnow()
    for candidate in session.scalars(sa.select(Job.id).where(Job.status == JobStatus.QUEUED)
                                     .order_by(Job.id).limit(5)):
        claimed = session.execute(
            sa.update(Job).where(Job.id == candidate, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING, claimed_by=worker, claimed_at=now,
                    attempts=Job.attempts + 1)
            .execution_options(synchronize_session=False))
        if getattr(claimed, "rowcount", 0) == 1:
            job = session.get(Job, candidate, populate_existing=True)
            return job
    return None


def recover_stale(session: DbSession, *, timeout: timedelta, now: datetime | None = None) -> int:
    """Re-queue (or fail) jobs whose worker stopped before finishing them."""
    now = now or utcnow()
    count = 0
    for job in session.scalars(sa.select(Job).where(Job.status == JobStatus.RUNNING,
                                                    Job.claimed_at < now - timeout)):
        before = {"status": job.status.value, "claimed_by": job.claimed_by}
        if job.attempts < job.max_attempts:
            job.status = JobStatus.QUEUED
            job.progress = f"re-queued after worker {job.claimed_by} stopped"
        else:
            job.status = JobStatus.FAILED
            job.error = f"interrupted {job.attempts} times (worker stopped); not retried"
            job.finished_at = now
        record_event(session, actor=None, action="job.recovered", target_type="job",
                     target_id=job.id, case_id=job.case_id, before=before,
                     after={"status": job.status.value})
        count += 1
    session.flush()
    return count


def run(session: DbSession, store: ObjectStore, job: Job) -> None:
    """Run a claimed job; record success or a clear failure (the caller commits)."""
    actor = session.get(User, job.created_by_id)
    fn = HANDLERS.get(job.kind)
    savepoint = session.begin_nested()
    try:
        if fn is None or actor is None:
            raise DomainError(f"no handler for job kind {job.kind!r}")
        result = fn(session, store, job, actor)
        savepoint.commit()
        job.status = JobStatus.SUCCEEDED
        job.result = result
    except ServiceUnavailable as exc:  # storage or database hiccup: try again later
        savepoint.rollback()
        retry = job.attempts < job.max_attempts
        job.status = JobStatus.QUEUED if retry else JobStatus.FAILED
        job.error = exc.message
    except DomainError as exc:
        savepoint.rollback()
        job.status, job.error = JobStatus.FAILED, exc.message
    except Exception as exc:  # a bug must not kill the worker; the job says what happened
        savepoint.rollback()
        log.exception("job %s (%s) failed unexpectedly", job.id, job.kind)
        job.status = JobStatus.FAILED
        # Users see a plain reason; the details (which may name SQL or paths) stay internal.
        job.error = f"unexpected {type(exc).__name__}; the details are in the worker log"
        job.result = {"traceback": traceback.format_exc()[-4000:]}
    if job.status is not JobStatus.QUEUED:
        job.finished_at = utcnow()
    job.progress = {JobStatus.SUCCEEDED: "done", JobStatus.FAILED: "failed"}.get(
        job.status, "waiting to retry")
    record_event(session, actor=None, action=f"job.{job.status.value}", target_type="job",
                 target_id=job.id, case_id=job.case_id,
                 after={"status": job.status.value, "error": job.error})
    session.flush()


def jobs_of_case(session: DbSession, case: Case, limit: int = 10) -> list[Job]:
    return list(session.scalars(sa.select(Job).where(Job.case_id == case.id)
                                .order_by(Job.id.desc()).limit(limit)))


@handler("verify_iteration")
def _verify_iteration(session: DbSession, store: ObjectStore, job: Job,
                      actor: User) -> dict[str, Any]:
    from .verification import verify_iteration

    # Lock the case: a workflow step cannot slip in between the status check and the report.
    case = session.scalar(sa.select(Case).where(Case.id == job.payload["case_id"])
                          .with_for_update(of=Case))
    if case is None:
        raise DomainError("the case no longer exists")
    job.progress = "measuring the mesh and evaluating the envelope"
    session.flush()
    report = verify_iteration(session, store, actor=actor, case=case,
                              number=int(job.payload["number"]))
    # The 3D preview is a derived cache: made here so the viewer opens at once, rebuilt on
    # demand if this fails (services/previews.py); it never fails the verification.
    from .previews import preview_after_verification

    job.progress = "building the 3D preview"
    session.flush()
    preview = preview_after_verification(session, store, report)
    return {"report_id": report.id, "passed": report.passed, "preview": preview}
