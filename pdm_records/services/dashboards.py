"""What each role's dashboard shows. Queries only; no changes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..models import Case, CaseStatus, DeviceType, User
from ..permissions import Role
from . import DbSession

QUEUE_STATUSES = (CaseStatus.SUBMITTED, CaseStatus.ACCEPTED, CaseStatus.CHANGES_REQUESTED,
                  CaseStatus.IN_DESIGN, CaseStatus.VERIFIED, CaseStatus.AWAITING_APPROVAL)


@dataclass
class Dashboard:
    sections: list[str] = field(default_factory=list)
    my_cases: list[Case] = field(default_factory=list)
    queue: list[Case] = field(default_factory=list)
    status_counts: dict[str, int] = field(default_factory=dict)
    device_types: list[DeviceType] = field(default_factory=list)
    user_counts: dict[str, int] = field(default_factory=dict)
    total_cases: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def build_dashboard(session: DbSession, user: User, limit: int = 10) -> Dashboard:
    roles = set(user.role_names)
    board = Dashboard()
    if Role.CLINICIAN in roles:
        board.sections.append("clinician")
        board.my_cases = list(session.scalars(
            sa.select(Case).where(Case.prescriber_id == user.id)
            .order_by(Case.created_at.desc()).limit(limit)))
    if Role.ENGINEER in roles:
        board.sections.append("engineer")
        from .requests import visible_to_engineer

        board.queue = list(session.scalars(
            sa.select(Case).where(Case.status.in_(QUEUE_STATUSES), visible_to_engineer(user))
            .order_by(Case.created_at).limit(limit)))
    if Role.QUALITY in roles:
        board.sections.append("quality")
        rows = session.execute(sa.select(Case.status, sa.func.count()).group_by(Case.status))
        board.status_counts = {str(s.value if hasattr(s, "value") else s): n for s, n in rows}
        board.total_cases = sum(board.status_counts.values())
        board.device_types = list(session.scalars(sa.select(DeviceType).order_by(DeviceType.name)))
    if Role.ADMIN in roles:
        board.sections.append("admin")
        board.user_counts = {
            "active": session.scalar(sa.select(sa.func.count()).select_from(User)
                                     .where(User.active.is_(True))) or 0,
            "inactive": session.scalar(sa.select(sa.func.count()).select_from(User)
                                       .where(User.active.is_(False))) or 0,
        }
    return board
