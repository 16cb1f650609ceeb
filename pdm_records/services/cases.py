"""Case numbers. (The case workflow itself comes with the requests issue.)"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..clock import utcnow
from ..models import CaseNumberCounter
from . import DbSession

CASE_NUMBER_FORMAT = "PDM-{year:04d}-{serial:06d}"


def allocate_case_number(session: DbSession, now: datetime | None = None) -> str:
    """Return the next free case number of the year, e.g. ``PDM-2026-000042``.

    The year's counter row is locked (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite serialises
    writers) so that two transactions never receive the same number.
    """
    year = (now or utcnow()).year
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    # Create the year's row if absent without racing another transaction doing the same.
    session.execute(insert(CaseNumberCounter).values(year=year, last=0).on_conflict_do_nothing())
    counter = session.scalars(
        sa.select(CaseNumberCounter)
        .where(CaseNumberCounter.year == year)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    counter.last += 1
    session.flush()
    return CASE_NUMBER_FORMAT.format(year=year, serial=counter.last)
