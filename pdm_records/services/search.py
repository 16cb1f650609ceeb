"""Searching the records for quality staff (DOMAIN.md §1, §6: records "readily retrievable
throughout the retention period", 21 CFR Part 11 §11.10(c)).

Contract: :func:`search_cases` takes validated :class:`~pdm_records.schemas.search.SearchFilters`
and the acting user, searches only the cases that user may see (``requests.visible_cases``),
and returns one page of rows plus the total. Queries only; no changes.

Speed (``benchmarks/bench_search.py``, 100,000 cases on PostgreSQL): every filter is a condition
on ``case`` itself or a semi-join on an indexed column (migration 0012); the total is a
``count(*)`` over ``case`` without the joins the page needs; the page finds its ids first (a
deferred join: deep pages skip rows without joining them), then reads just the columns a row
shows (patient code, device type, institution, prescriber, hold mark) in the same statement:
two round trips per search, no query per row, no ORM objects built.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from ..clock import utcnow
from ..models import (
    Case,
    DeviceType,
    LegalHold,
    Patient,
    Site,
    StoredFile,
    User,
    VerificationReport,
)
from ..schemas.search import SearchFilters
from . import DbSession
from .requests import visible_cases

SORT_COLUMNS: dict[str, Any] = {
    "created_at": Case.created_at,
    "number": Case.number,
    "status": Case.status,
    "released_at": Case.released_at,
    "retain_until": Case.retain_until,
    "patient_code": Patient.code,
}


@dataclass(frozen=True)
class CaseHit:
    id: int
    number: str
    status: str
    patient_code: str
    device_type: str
    category: str
    implantable: bool
    institution: str
    prescriber: str
    created_at: datetime
    released_at: datetime | None
    retain_until: datetime | None
    verification: str
    on_hold: bool


@dataclass(frozen=True)
class SearchResult:
    items: list[CaseHit]
    total: int
    page: int
    per_page: int
    sort: str

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def _start_of(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _prefix_match(column: Any, prefix: str) -> sa.ColumnElement[bool]:
    """``column LIKE 'prefix%'`` (index-backed); the schema allows no LIKE wildcards. Codes are
    stored as entered (upper case by the default pattern), so a lower-case prefix also tries
    its upper-case form."""
    variants = dict.fromkeys((prefix, prefix.upper()))
    return sa.or_(*(column.like(f"{p}%") for p in variants))


def _held(on_hold: bool) -> sa.ColumnElement[bool]:
    """An active legal hold on the case, or any of its objects under legal hold (or neither,
    ``on_hold=False``). A case can be held before any file row exists (its signed records are
    objects without ``stored_file`` rows), so the hold table is asked too. ``legal_hold`` itself,
    not ``IS true``, so that PostgreSQL matches the partial index of migration 0012."""
    held = sa.or_(
        sa.exists().where(StoredFile.case_id == Case.id, StoredFile.legal_hold),
        sa.exists().where(LegalHold.case_id == Case.id, LegalHold.released_at.is_(None)),
    )
    return held if on_hold else ~held


def conditions(filters: SearchFilters, now: datetime) -> list[sa.ColumnElement[bool]]:
    """The WHERE conditions on ``case`` for ``filters`` (no joins needed)."""
    f = filters
    where: list[sa.ColumnElement[bool]] = []
    if f.number:
        where.append(_prefix_match(Case.number, f.number))
    if f.patient_code:
        where.append(Case.patient_id.in_(
            sa.select(Patient.id).where(_prefix_match(Patient.code, f.patient_code))))
    if f.device_type_id is not None:
        where.append(Case.device_type_id == f.device_type_id)
    if f.category is not None or f.implantable is not None:
        types = sa.select(DeviceType.id)
        if f.category is not None:
            types = types.where(DeviceType.category == f.category)
        if f.implantable is not None:
            types = types.where(DeviceType.implantable.is_(f.implantable))
        where.append(Case.device_type_id.in_(types))
    if f.prescriber_id is not None:
        where.append(Case.prescriber_id == f.prescriber_id)
    if f.institution_id is not None:
        where.append(Case.institution_id == f.institution_id)
    if f.statuses:
        where.append(Case.status.in_(f.statuses))
    if f.created_from is not None:
        where.append(Case.created_at >= _start_of(f.created_from))
    if f.created_to is not None:
        where.append(Case.created_at < _start_of(f.created_to) + timedelta(days=1))
    if f.released_from is not None:
        where.append(Case.released_at >= _start_of(f.released_from))
    if f.released_to is not None:
        where.append(Case.released_at < _start_of(f.released_to) + timedelta(days=1))
    if f.envelope_version_id is not None:
        where.append(sa.exists().where(
            VerificationReport.envelope_version_id == f.envelope_version_id,
            VerificationReport.case_id == Case.id))
    if f.verification is not None:
        where.append(Case.verification_result == f.verification)
    if f.on_hold is not None:
        where.append(_held(f.on_hold))
    if f.expiring_within_days is not None:
        where.append(Case.retain_until >= now)
        where.append(Case.retain_until < now + timedelta(days=f.expiring_within_days))
    return where


def search_statements(
    actor: User, filters: SearchFilters, now: datetime
) -> tuple[sa.Select[tuple[int]], sa.Select[Any]]:
    """The count statement and the page statement of a search (also for EXPLAIN)."""
    visible = visible_cases(actor).whereclause
    where = [w for w in (visible, *conditions(filters, now)) if w is not None]
    count = sa.select(sa.func.count()).select_from(Case).where(*where)
    key = filters.sort.lstrip("-")
    descending = filters.sort.startswith("-")
    column = SORT_COLUMNS[key]
    order = column.desc() if descending else column.asc()
    if key in ("released_at", "retain_until"):  # empty dates last either way
        order = order.nulls_last()
    ordering = (order, Case.id.desc() if descending else Case.id.asc())
    # Deferred join: find the page's ids first (an index walk, no joins), then read those rows
    # with their patient, device type, institution, prescriber and hold mark, so that a deep
    # page does not join every skipped row.
    ids = sa.select(Case.id).where(*where)
    if key == "patient_code":
        ids = ids.join(Patient, Patient.id == Case.patient_id)
    ids = (ids.correlate(None).order_by(*ordering).limit(filters.per_page)
           .offset((filters.page - 1) * filters.per_page))
    page = (sa.select(
        Case.id, Case.number, Case.status, Patient.code, DeviceType.name, DeviceType.category,
        DeviceType.implantable, Site.name, User.printed_name, Case.created_at, Case.released_at,
        Case.retain_until, Case.verification_result, _held(True))
        .join(Patient, Patient.id == Case.patient_id)
        .join(DeviceType, DeviceType.id == Case.device_type_id)
        .join(Site, Site.id == Case.institution_id)
        .join(User, User.id == Case.prescriber_id)
        .where(Case.id.in_(ids.scalar_subquery())).order_by(*ordering))
    return count, page


def search_cases(
    session: DbSession, actor: User, filters: SearchFilters, *, now: datetime | None = None
) -> SearchResult:
    """One page of the cases ``actor`` may see that match ``filters``, and their total."""
    count, page = search_statements(actor, filters, now or utcnow())
    total = session.scalar(count) or 0
    items = [CaseHit(
        id=row[0], number=row[1], status=row[2].value, patient_code=row[3], device_type=row[4],
        category=row[5].value, implantable=row[6], institution=row[7], prescriber=row[8],
        created_at=row[9], released_at=row[10], retain_until=row[11],
        verification=row[12].value, on_hold=bool(row[13])) for row in session.execute(page)]
    return SearchResult(items=items, total=total, page=filters.page,
                        per_page=filters.per_page, sort=filters.sort)
