"""Roles and named permissions (21 CFR Part 11 §11.10(d), (g): access and authority checks).

Every view and API operation declares one :class:`Permission`; the role → permission table below
is the single source of who may do what. Administrators manage accounts and configuration but
hold no clinical permission: an admin sees clinical records only with a clinical role as well.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class Role(StrEnum):
    CLINICIAN = "clinician"
    ENGINEER = "engineer"
    QUALITY = "quality"
    ADMIN = "admin"


ROLE_DESCRIPTIONS = {
    Role.CLINICIAN: "Prescriber: submits and signs design requests, approves final designs",
    Role.ENGINEER: "Designs and verifies patient-matched devices",
    Role.QUALITY: "Envelopes, releases, holds, search, audit packages, disposal",
    Role.ADMIN: "Accounts, roles, sites and configuration (no clinical records)",
}


class Permission(StrEnum):
    # Reachable without signing in (login page, static files, health, OpenAPI document).
    PUBLIC = "public"
    # Any signed-in account (dashboard, own profile, own API tokens).
    AUTHENTICATED = "authenticated"
    VIEW_CATALOGUE = "catalogue:view"  # device types, sites
    CREATE_REQUEST = "request:create"
    VIEW_OWN_CASES = "case:view-own"
    VIEW_CASE_QUEUE = "case:view-queue"
    VIEW_ALL_CASES = "case:view-all"
    # Reading a case and acting on it; which cases and which steps is decided per object by
    # the requests service and the workflow table (services/requests.py, workflow.py).
    VIEW_CASES = "case:view"
    ACT_ON_CASES = "case:act"
    MANAGE_DESIGN = "design:manage"
    ASSIGN_CASES = "case:assign"  # quality reassigns a case to another engineer
    MANAGE_ENVELOPES = "envelope:manage"
    # Legal holds, the retention overview and disposal (DOMAIN.md §5).
    MANAGE_RETENTION = "retention:manage"
    MANAGE_CATALOGUE = "catalogue:manage"
    MANAGE_USERS = "user:manage"
    VIEW_CONFIGURATION = "config:view"
    # The storage-integrity page: quarantined orphans and damaged records (keys, no content).
    VIEW_STORAGE_INTEGRITY = "storage:view"
    # Audit packages of any case (docs/audit-package.md): quality answers inspectors.
    EXPORT_PACKAGES = "package:export"


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.CLINICIAN: frozenset({
        Permission.VIEW_CATALOGUE, Permission.CREATE_REQUEST, Permission.VIEW_OWN_CASES,
        Permission.VIEW_CASES, Permission.ACT_ON_CASES,
    }),
    Role.ENGINEER: frozenset({
        Permission.VIEW_CATALOGUE, Permission.VIEW_CASE_QUEUE, Permission.MANAGE_DESIGN,
        Permission.VIEW_CASES, Permission.ACT_ON_CASES,
    }),
    Role.QUALITY: frozenset({
        Permission.VIEW_CATALOGUE, Permission.VIEW_ALL_CASES, Permission.MANAGE_ENVELOPES,
        Permission.MANAGE_CATALOGUE, Permission.VIEW_CASES, Permission.ACT_ON_CASES,
        Permission.MANAGE_RETENTION,
        Permission.VIEW_STORAGE_INTEGRITY,
        Permission.ASSIGN_CASES,
        Permission.EXPORT_PACKAGES,
    }),
    Role.ADMIN: frozenset({
        Permission.MANAGE_USERS, Permission.VIEW_CONFIGURATION, Permission.MANAGE_CATALOGUE,
        Permission.VIEW_STORAGE_INTEGRITY,
    }),
}


def permissions_for(roles: Iterable[str]) -> frozenset[Permission]:
    """Union of the permissions of the given role names (unknown names grant nothing)."""
    granted: set[Permission] = {Permission.PUBLIC, Permission.AUTHENTICATED}
    for name in roles:
        try:
            granted |= ROLE_PERMISSIONS[Role(name)]
        except ValueError:
            continue
    return frozenset(granted)
