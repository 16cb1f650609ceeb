"""Role → permission table (21 CFR Part 11 §11.10(d), (g)): who may do what."""

from __future__ import annotations

import pytest

from pdm_records.permissions import (
    ROLE_DESCRIPTIONS,
    ROLE_PERMISSIONS,
    Permission,
    Role,
    permissions_for,
)

BASELINE = frozenset({Permission.PUBLIC, Permission.AUTHENTICATED})
CLINICAL = (
    Permission.VIEW_OWN_CASES,
    Permission.VIEW_ALL_CASES,
    Permission.VIEW_CASE_QUEUE,
    Permission.CREATE_REQUEST,
    Permission.MANAGE_DESIGN,
)


def test_every_role_has_permissions_and_a_description() -> None:
    for role in Role:
        assert role in ROLE_PERMISSIONS
        assert ROLE_PERMISSIONS[role], f"{role} grants nothing"
        assert role in ROLE_DESCRIPTIONS
    assert set(ROLE_PERMISSIONS) == set(Role)


@pytest.mark.parametrize("permission", CLINICAL)
def test_admin_holds_no_clinical_permission(permission: Permission) -> None:
    assert permission not in permissions_for([Role.ADMIN.value])


def test_admin_manages_users_and_configuration() -> None:
    granted = permissions_for(["admin"])
    assert Permission.MANAGE_USERS in granted
    assert Permission.VIEW_CONFIGURATION in granted


def test_clinician_can_create_requests_and_see_own_cases_only() -> None:
    granted = permissions_for(["clinician"])
    assert Permission.CREATE_REQUEST in granted
    assert Permission.VIEW_OWN_CASES in granted
    assert Permission.VIEW_ALL_CASES not in granted
    assert Permission.MANAGE_DESIGN not in granted
    assert Permission.MANAGE_USERS not in granted


def test_engineer_and_quality_do_not_create_requests() -> None:
    assert Permission.CREATE_REQUEST not in permissions_for(["engineer"])
    assert Permission.CREATE_REQUEST not in permissions_for(["quality"])
    assert Permission.MANAGE_DESIGN in permissions_for(["engineer"])
    assert Permission.VIEW_ALL_CASES in permissions_for(["quality"])


@pytest.mark.parametrize("roles", [[], ["superuser"], ["Admin"], ["ADMIN", "root"], [""]])
def test_unknown_role_names_grant_only_the_baseline(roles: list[str]) -> None:
    assert permissions_for(roles) == BASELINE


def test_every_role_includes_the_baseline() -> None:
    for role in Role:
        assert permissions_for([role.value]) >= BASELINE


def test_permissions_are_the_union_of_roles() -> None:
    both = permissions_for(["admin", "clinician", "no-such-role"])
    assert both == BASELINE | ROLE_PERMISSIONS[Role.ADMIN] | ROLE_PERMISSIONS[Role.CLINICIAN]
    assert Permission.CREATE_REQUEST in both


def test_permissions_for_accepts_any_iterable() -> None:
    assert permissions_for(iter(["engineer"])) == BASELINE | ROLE_PERMISSIONS[Role.ENGINEER]
    assert permissions_for(r for r in ("quality",)) == BASELINE | ROLE_PERMISSIONS[Role.QUALITY]
