"""Demo data: sites, device types and one account per role. Safe to run twice."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from flask_security import hash_password

from ..models import DeviceCategory, DeviceType, Site, SiteKind, User
from ..permissions import Role
from ..storage import ObjectStore
from . import DbSession, catalogue, users
from .audit import record_event

DEMO_SITES = [
    ("Example University Hospital", SiteKind.HEALTH_INSTITUTION, "1 Example Road", "DE"),
    ("Example Devices Manufacturing", SiteKind.MANUFACTURER, "2 Example Street", "DE"),
]

DEMO_DEVICE_TYPES = [
    {
        "name": "Patient-specific cranial/facial implant",
        "category": DeviceCategory.PATIENT_MATCHED,
        "implantable": True,
        "expected_lifetime_years": 30,
        "description": "PEKK/PEEK patient-matched cranial and facial implant. Envelope numbers "
                       "follow FDA 510(k) K133809 / K161052 (OsteoFab).",
        "parameters": [
            {"name": "wall_thickness", "unit": "mm", "description": "plate wall thickness"},
            {"name": "max_diameter", "unit": "mm", "description": "largest dimension"},
            {"name": "hole_diameter", "unit": "mm", "description": "through-hole diameter"},
            {"name": "hole_to_edge", "unit": "mm", "description": "hole cluster to edge"},
            {"name": "open_area", "unit": "%", "description": "open area of the implant"},
        ],
    },
    {
        "name": "Patient-specific surgical guide",
        "category": DeviceCategory.PATIENT_MATCHED,
        "implantable": False,
        "expected_lifetime_years": 1,
        "description": "Single-use drilling/cutting guide matched to the patient's bone "
                       "(illustrative envelope numbers).",
        "parameters": [
            {"name": "wall_thickness", "unit": "mm", "description": "guide body thickness"},
            {"name": "drill_sleeve_diameter", "unit": "mm", "description": "sleeve bore"},
            {"name": "contact_area", "unit": "mm2", "description": "bone contact surface"},
        ],
    },
]

DEMO_USERS = [
    ("clinician@example.org", "Dr Clara Clinician", [Role.CLINICIAN], "GMC-1234567", 0),
    ("engineer@example.org", "Eli Engineer", [Role.ENGINEER], None, 1),
    ("quality@example.org", "Quinn Quality", [Role.QUALITY], None, 1),
    # A second quality user: envelopes are approved by someone other than their author.
    ("quality.lead@example.org", "Lee Quality-Lead", [Role.QUALITY], None, 1),
    ("admin@example.org", "Ada Admin", [Role.ADMIN], None, 1),
]


@dataclass(frozen=True)
class DemoLogin:
    email: str
    role: str
    password: str
    totp_key: str | None = None  # base32 authenticator key (users who must use 2FA)
    totp_uri: str | None = None  # otpauth:// URI of the same key (for a QR code)


def load_demo(
    session: DbSession, password: str | None = None, store: ObjectStore | None = None
) -> list[DemoLogin]:
    """Create what is missing; (re)set each demo account's password and return the logins.
    With ``store``, also draft and approve the demo design envelopes."""
    site_ids = []
    for name, kind, address, country in DEMO_SITES:
        site = session.scalar(sa.select(Site).where(Site.name == name))
        if site is None:
            site = catalogue.create_site(session, actor=None, name=name, kind=kind,
                                         address=address, country=country)
        site_ids.append(site.id)
    for spec in DEMO_DEVICE_TYPES:
        if session.scalar(sa.select(DeviceType).where(DeviceType.name == spec["name"])) is None:
            catalogue.create_device_type(session, actor=None, **spec)  # type: ignore[arg-type]
    logins = []
    for email, name, roles, registration, site_index in DEMO_USERS:
        secret = password or secrets.token_urlsafe(12)
        user = users.find_user_by_email(session, email)
        if user is None:
            users.create_user(session, actor=None, email=email, password=secret,
                              printed_name=name, roles=[r.value for r in roles],
                              registration_number=registration, site_id=site_ids[site_index])
        else:
            _reset_password(session, user, secret)
        logins.append(DemoLogin(email, ", ".join(r.value for r in roles), secret))
    if store is not None:
        _demo_envelopes(session, store, {login.email: login.password for login in logins})
    return [_with_second_factor(session, login) for login in logins]


def _with_second_factor(session: DbSession, login: DemoLogin) -> DemoLogin:
    """Demo users whose role must use two-factor sign-in get an authenticator key (kept when
    they have one already, so a phone that scanned it keeps working)."""
    from ..security.mfa import enrol, enrolment_of, is_enrolled, mfa_required

    user = users.find_user_by_email(session, login.email)
    if user is None:  # created just before; never strip the check (-O)
        raise ValueError(f"demo user {login.email} is missing")
    if not mfa_required(user) and not is_enrolled(user):
        return login
    enrolment = enrolment_of(user) if is_enrolled(user) else enrol(user)
    session.flush()
    return DemoLogin(login.email, login.role, login.password, enrolment.b32_key, enrolment.uri)


# The cranial/facial implant envelope uses the OsteoFab clearance numbers (FDA 510(k) K133809,
# K161052; DOMAIN.md §4). The surgical-guide numbers are illustrative only.
DEMO_ENVELOPES = {
    "Patient-specific cranial/facial implant": {
        "max_diameter": 200.0, "min_wall_thickness": 1.0, "max_wall_thickness": 10.0,
        "watertight_required": True, "max_bodies": 1, "no_self_intersections": True,
        "parameters": {
            "wall_thickness": {"unit": "mm", "min": 1.0, "max": 10.0, "patient_adjustable": True},
            "max_diameter": {"unit": "mm", "min": 10.0, "max": 200.0,
                             "patient_adjustable": True},
            "hole_diameter": {"unit": "mm", "min": 3.0, "max": 10.0, "patient_adjustable": True},
            "hole_to_edge": {"unit": "mm", "min": 15.0, "max": 100.0,
                             "patient_adjustable": True},
            "open_area": {"unit": "%", "min": 0.0, "max": 25.0, "patient_adjustable": True},
        },
    },
    "Patient-specific surgical guide": {  # illustrative numbers, not from a clearance
        "max_extents": [150.0, 100.0, 60.0], "min_wall_thickness": 2.0,
        "watertight_required": True, "max_bodies": 1, "no_self_intersections": True,
        "parameters": {
            "wall_thickness": {"unit": "mm", "min": 2.0, "max": 8.0, "patient_adjustable": True},
            "drill_sleeve_diameter": {"unit": "mm", "min": 2.0, "max": 6.5,
                                      "patient_adjustable": True},
        },
    },
}


def _demo_envelopes(session: DbSession, store: ObjectStore, passwords: dict[str, str]) -> None:
    from .envelopes import approve, approved_version, create_draft

    author = users.find_user_by_email(session, "quality@example.org")
    approver = users.find_user_by_email(session, "quality.lead@example.org")
    if author is None or approver is None:
        raise RuntimeError("the demo quality accounts are missing: create them before envelopes")
    for name, definition in DEMO_ENVELOPES.items():
        device_type = session.scalar(sa.select(DeviceType).where(DeviceType.name == name))
        if device_type is None or approved_version(session, device_type.id) is not None:
            continue
        draft = create_draft(session, actor=author, device_type_id=device_type.id,
                             definition=definition, notes="demo envelope")
        code = None
        if approver.tf_totp_secret:  # enrolled by an earlier run: sign with a current code
            from ..extensions import security

            code = security.totp_factory.generate_totp_password(approver.tf_totp_secret)
        approve(session, store, actor=approver, version=draft,
                password=passwords["quality.lead@example.org"], totp_code=code)


def _reset_password(session: DbSession, user: User, secret: str) -> None:
    user.password = hash_password(secret)
    user.active = True
    session.flush()
    record_event(session, actor=None, action="user.password_reset", target_type="user",
                 target_id=user.id, after={"reason": "pdm demo"})
