"""3D previews of verified design iterations: a compact, thickness-coloured GLB and its legend.

The browser never gets the uploaded mesh: it gets the GLB that :mod:`pdm_records.geometry.preview`
builds from the stored mesh (read back and checked against its SHA-256) and the iteration's
latest verification report (envelope minimum wall, failed checks' locations). A preview is a
derived cache, not a record: it is built by the verification job, rebuilt on demand when it is
missing (iterations verified before previews existed) or of an older format, and carries no
retention, signature or audit event (nothing about a record changes when it is built). Who may
see it is decided by the case: callers pass a case they got from ``requests.get_case``.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from ..errors import Conflict, NotFound, ServiceUnavailable
from ..geometry.errors import MeshError, RayEngineUnavailable
from ..geometry.loaders import load_mesh_bytes
from ..geometry.preview import PREVIEW_FORMAT, build_preview, report_markers
from ..models import Case, DesignIteration, DesignPreview, FileState, VerificationReport
from ..storage import ObjectStore, StorageError
from . import DbSession
from .verification import latest_report, report_intact

log = logging.getLogger(__name__)


def envelope_min_wall(report: VerificationReport) -> float | None:
    """The minimum wall thickness of the envelope the report was evaluated against (mm)."""
    envelope = (report.report.get("evaluation") or {}).get("envelope") or {}
    value = envelope.get("min_wall_thickness")
    return None if value is None else float(value)


def build_iteration_preview(session: DbSession, store: ObjectStore,
                            iteration: DesignIteration,
                            report: VerificationReport) -> DesignPreview:
    """Build (or rebuild) and keep the preview of ``iteration`` for ``report``; flush only.

    Raises ``ServiceUnavailable`` when the mesh cannot be read or Embree is missing, and
    ``Conflict`` when the stored mesh no longer loads (it did when it was verified).
    """
    stored = iteration.file
    try:
        data = store.read(stored.key, version_id=stored.version_id, sha256=stored.sha256)
    except StorageError as exc:
        raise ServiceUnavailable(f"The design file could not be read: {exc}") from exc
    file_type = stored.original_name.rsplit(".", 1)[-1].lower()
    try:
        mesh = load_mesh_bytes(data, file_type, iteration.units)
        preview = build_preview(mesh, min_wall=envelope_min_wall(report),
                                markers=report_markers(report.report, mesh))
    except MeshError as exc:
        raise Conflict(f"The 3D preview cannot be built: {exc.message}.") from exc
    except RayEngineUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from exc
    old = session.scalar(sa.select(DesignPreview).where(DesignPreview.report_id == report.id))
    if old is not None:
        session.delete(old)
        session.flush()
    row = DesignPreview(iteration_id=iteration.id, report_id=report.id, format=PREVIEW_FORMAT,
                        glb=preview.glb, glb_sha256=preview.legend["glb_sha256"],
                        legend=preview.legend)
    session.add(row)
    session.flush()
    return row


def preview_after_verification(session: DbSession, store: ObjectStore,
                               report: VerificationReport) -> bool:
    """Build the preview right after a verification; never fail the verification over it.

    Runs in a savepoint: on any error the preview is left out (the on-demand path builds it
    later) and the error is logged. Returns whether a preview was kept.
    """
    iteration = session.get(DesignIteration, report.iteration_id)
    if iteration is None:  # pragma: no cover - the report was just made for it
        return False
    savepoint = session.begin_nested()
    try:
        build_iteration_preview(session, store, iteration, report)
        savepoint.commit()
        return True
    except Exception:  # a derived cache: the verification stands without it
        savepoint.rollback()
        log.exception("3D preview of %s iteration %s was not built", report.case_id,
                      iteration.number)
        return False


def iteration_preview(session: DbSession, store: ObjectStore, *, case: Case,
                      number: int) -> tuple[DesignPreview, VerificationReport]:
    """The current preview of design iteration ``number`` of a case the caller may see.

    Built on demand when missing or of another format (the caller commits). 404 when the
    iteration does not exist or has not been verified yet.
    """
    iteration = next((i for i in case.iterations if i.number == number), None)
    if iteration is None:
        raise NotFound("No such design iteration on this case.")
    if iteration.file.state is FileState.DISPOSED:
        raise NotFound(f"Design iteration #{number} was disposed of at the end of its "
                       "retention period; its file and 3D preview no longer exist.")
    report = latest_report(session, iteration)
    if report is None:
        raise NotFound(f"Design iteration #{number} has not been verified yet; its 3D "
                       "preview is made when it is verified.")
    cached = session.scalar(sa.select(DesignPreview).where(DesignPreview.report_id == report.id))
    if cached is not None and cached.format == PREVIEW_FORMAT:
        return cached, report
    savepoint = session.begin_nested()
    try:
        row = build_iteration_preview(session, store, iteration, report)
        savepoint.commit()
    except IntegrityError:
        # Another request built it at the same moment: use theirs.
        savepoint.rollback()
        theirs = session.scalar(sa.select(DesignPreview).where(
            DesignPreview.report_id == report.id))
        if theirs is None:  # pragma: no cover - the unique row exists after the conflict
            raise
        row = theirs
    except BaseException:
        savepoint.rollback()
        raise
    return row, report


def preview_document(case: Case, number: int, preview: DesignPreview,
                     report: VerificationReport) -> dict[str, Any]:
    """The legend as the viewer reads it: the cached legend plus the report it stands for."""
    evaluation = report.report.get("evaluation") or {}
    checks = evaluation.get("checks") or {}
    th = (report.report.get("measurements") or {}).get("thickness") or {}
    return {
        **preview.legend,
        "case_number": case.number,
        "iteration": number,
        "report": {
            "id": report.id,
            "passed": report.passed,
            "intact": report_intact(report),
            "created_at": report.created_at.isoformat(),
            "envelope_version_id": report.envelope_version_id,
            "thickness_statistic": (evaluation.get("envelope") or {}).get(
                "thickness_statistic", "min"),
            "thickness": {k: th.get(k) for k in ("min", "p1", "p5", "median", "max",
                                                 "samples", "method")},
            "failed_checks": [name for name in evaluation.get("failed", []) if name in checks],
        },
    }
