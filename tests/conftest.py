"""Fixtures: an app per test on a clean database (SQLite by default, PostgreSQL when
``PDM_TEST_DATABASE_URL`` points at a server), a local write-once store in a temp folder, and
helpers to sign in as each role. Meshes and records are generated in code.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from pdm_records import create_app
from pdm_records.extensions import db, limiter
from pdm_records.models import Base, DeviceType, Site, SiteKind, User
from pdm_records.permissions import Role
from pdm_records.security.mfa import enrol as enrol_user
from pdm_records.security.mfa import mfa_required
from pdm_records.services import users as user_service
from pdm_records.services.demo import load_demo
from tests.totp import CodeSource

PASSWORD = "correct horse battery staple"
TEST_DB = os.environ.get("PDM_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DB.startswith("postgresql")
ROOT = Path(__file__).resolve().parent.parent


def pytest_report_header(config: pytest.Config) -> str:
    return f"pdm-records database: {'PostgreSQL ' + TEST_DB if ON_POSTGRES else 'SQLite'}"


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def database_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for this test process; each test gets a clean copy or truncation."""
    if ON_POSTGRES:
        base = sa.engine.make_url(TEST_DB)
        name = f"{base.database or 'pdm_test'}_{_worker()}"
        admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        url = base.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'template.sqlite3'}"
    _migrate(url, tmp_path_factory.mktemp("inst"))
    yield url
    if ON_POSTGRES:
        admin = sa.create_engine(sa.engine.make_url(TEST_DB).set(database="postgres"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _migrate(url: str, instance: Path) -> None:
    from flask_migrate import upgrade

    app = create_app(_base_config(url, instance))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()


def _base_config(url: str, instance: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "PDM_DATABASE_URL": url,
        "SQLALCHEMY_DATABASE_URI": url,
        "PDM_STORAGE_PATH": str(instance / "objects"),
        "SECRET_KEY": "test-secret-key-" + "x" * 40,
        "PDM_LOGIN_RATE_LIMIT": "1000 per minute",
        "PDM_MAX_UPLOAD_MB": 1,
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "SECURITY_PASSWORD_HASH": "argon2",
    }


@pytest.fixture
def db_url(database_template: str, tmp_path: Path) -> str:
    return fresh_database(database_template, tmp_path)


def fresh_database(database_template: str, tmp_path: Path) -> str:
    """A clean database from the migrated template: a copy (SQLite) or a truncation (PG)."""
    if ON_POSTGRES:
        engine = sa.create_engine(database_template)
        with engine.begin() as conn:
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
        engine.dispose()
        return database_template
    src = Path(database_template.removeprefix("sqlite:///"))
    dst = tmp_path / f"test-{uuid.uuid4().hex[:8]}.sqlite3"
    shutil.copyfile(src, dst)
    return f"sqlite:///{dst}"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    """Override in a test module to change the app's configuration."""
    return {}


@pytest.fixture
def app(db_url: str, tmp_path: Path, config_overrides: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path / "instance"))
    config = _base_config(db_url, tmp_path)
    config.update(config_overrides)
    app = create_app(config)
    with app.app_context():
        limiter.reset()  # the limiter's memory storage outlives one app
    # No app context is held during requests: Flask would reuse it, and ``g`` would leak
    # between requests. Tests that touch the database open ``with app.app_context()``.
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def site_id(app: Flask) -> int:
    with app.app_context():
        row = Site(name="Test Hospital", kind=SiteKind.HEALTH_INSTITUTION)
        db.session.add(row)
        db.session.commit()
        return row.id


@dataclass(frozen=True)
class Account:
    id: int
    email: str
    roles: tuple[str, ...]
    totp_key: str | None = None  # base32 key when enrolled in two-factor sign-in


class Accounts:
    """Creates one account per role combination on demand and signs clients in."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._users: dict[str, Account] = {}
        self._codes: dict[int, CodeSource] = {}

    def user(self, *roles: str, email: str | None = None, enrol: bool | None = None) -> Account:
        """An account with ``roles``. Users of roles that must use two-factor sign-in
        (``PDM_MFA_REQUIRED_ROLES``) are enrolled with an authenticator key, as they would be
        after their first sign-in; ``enrol`` overrides that."""
        key = email or "+".join(sorted(roles))
        if key not in self._users:
            email = email or f"test-{'-'.join(sorted(roles)) or 'nobody'}@example.org"
            with self.app.test_request_context():
                user = user_service.create_user(
                    db.session, actor=None, email=email, password=PASSWORD,
                    printed_name=f"Test {' '.join(roles).title()}", roles=list(roles),
                    registration_number="REG-1" if Role.CLINICIAN in roles else None)
                totp_key = None
                if enrol if enrol is not None else mfa_required(user):
                    totp_key = enrol_user(user).b32_key
                db.session.commit()
                self._users[key] = Account(user.id, user.email, tuple(roles), totp_key)
        return self._users[key]

    def code(self, account: Account) -> str:
        """The next TOTP code of an enrolled account (a step never used before)."""
        assert account.totp_key, f"{account.email} is not enrolled in two-factor sign-in"
        source = self._codes.setdefault(account.id, CodeSource(account.totp_key))
        return source.next()

    def totp(self, *roles: str) -> str:
        return self.code(self.user(*roles))

    def login(self, client: FlaskClient, *roles: str) -> Account:
        """Sign in through the real forms: password, then the authenticator code if enrolled."""
        user = self.user(*roles)
        response = client.post("/login", data={"email": user.email, "password": PASSWORD,
                                               "csrf_token": csrf_token(client, "/login")},
                               follow_redirects=False)
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        if user.totp_key:
            assert "/tf-validate" in response.headers["Location"], response.headers["Location"]
            response = client.post("/tf-validate", data={
                "code": self.code(user), "csrf_token": csrf_token(client, "/tf-validate")})
            assert response.status_code == 302, response.get_data(as_text=True)[:500]
            assert "/tf-" not in response.headers["Location"], response.headers["Location"]
        return user

    def token(self, *roles: str, email: str | None = None) -> str:
        """A new API token of the account ``user(*roles, email=email)``."""
        account = self.user(*roles, email=email)
        with self.app.app_context():
            user = db.session.get(User, account.id)
            assert user is not None
            _, secret = user_service.create_token(db.session, actor=None, user=user,
                                                  name="test", expiry_days=1)
            db.session.commit()
        return secret


@pytest.fixture
def accounts(app: Flask) -> Accounts:
    return Accounts(app)


@pytest.fixture
def no_csrf(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = False


def csrf_token(client: FlaskClient, path: str) -> str:
    """The CSRF token of the form served at ``path`` (as a browser would read it)."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    if not client.application.config.get("WTF_CSRF_ENABLED", True):
        return ""
    assert match, f"no CSRF token in {path}"
    return match.group(1)


def table_counts(app: Flask) -> dict[str, int]:
    """Row counts of every table (to prove a refusal changed nothing)."""
    with app.app_context():
        return {t.name: db.session.scalar(sa.select(sa.func.count()).select_from(t)) or 0
                for t in Base.metadata.sorted_tables}


def object_count(app: Flask) -> int:
    root = Path(app.config["PDM_STORAGE_PATH"])
    return sum(1 for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.fixture
def catalogue(app: Flask) -> dict[str, int]:
    return load_catalogue(app)


def load_catalogue(app: Flask) -> dict[str, int]:
    """The demo catalogue plus a custom-made and an adaptable device type; their ids."""
    with app.app_context():
        load_demo(db.session, password="demo passphrase 1")
        from pdm_records.models import DeviceCategory
        from pdm_records.services.catalogue import create_device_type

        create_device_type(db.session, actor=None, name="Custom mandible plate",
                           category=DeviceCategory.CUSTOM_MADE, implantable=True,
                           expected_lifetime_years=20, parameters=[
                               {"name": "plate_thickness", "unit": "mm", "description": ""},
                               {"name": "screw_count", "unit": "", "description": ""}])
        create_device_type(db.session, actor=None, name="Adaptable ankle orthosis",
                           category=DeviceCategory.ADAPTABLE, implantable=False,
                           expected_lifetime_years=2, parameters=[])
        db.session.commit()
        ids = {d.name: d.id for d in db.session.query(DeviceType)}
        hospital = db.session.query(Site).filter(Site.name.like("%Hospital%")).one()
        return {"implant": ids["Patient-specific cranial/facial implant"],
                "guide": ids["Patient-specific surgical guide"],
                "custom": ids["Custom mandible plate"],
                "adaptable": ids["Adaptable ankle orthosis"], "hospital": hospital.id}


_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped:
        _skipped.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """With PDM_FAIL_ON_SKIP=1 (CI), a skipped test fails the run: nothing is silently untested."""
    if os.environ.get("PDM_FAIL_ON_SKIP") == "1" and _skipped and exitstatus == 0:
        session.exitstatus = 1
        print(f"\nFAIL: {len(_skipped)} test(s) skipped with PDM_FAIL_ON_SKIP=1: {_skipped[:10]}")
