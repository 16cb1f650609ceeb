"""Retention floors (IMDRF N58: at least 15 years for implantable devices, 5 years for others).

Pure. The full engine (regimes, clock events, extension on later events) comes with the
retention issue; until then every record object is protected from creation with this floor.
"""

from __future__ import annotations

from datetime import datetime

IMPLANTABLE_YEARS = 15
OTHER_YEARS = 5


def add_years(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year + years)
    except ValueError:  # 29 February → 28 February
        return moment.replace(year=moment.year + years, day=28)


def retention_floor(*, implantable: bool, start: datetime) -> datetime:
    return add_years(start, IMPLANTABLE_YEARS if implantable else OTHER_YEARS)
