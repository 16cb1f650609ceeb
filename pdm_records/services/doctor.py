"""Health checks behind ``pdm doctor``: what is wrong and how to fix it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..models import RoleRow, User, roles_users
from ..permissions import Role
from ..storage import ObjectStore, StorageError
from . import DbSession


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(
    *,
    config: Mapping[str, Any],
    config_problems: list[str],
    session: DbSession,
    migrations_dir: Path,
    store_factory: Callable[[], ObjectStore],
) -> list[Check]:
    checks = [Check("configuration", not config_problems,
                    "no problems" if not config_problems else "; ".join(config_problems),
                    "fix the settings named above (instance/config.toml or PDM_* variables)")]
    checks.append(_retention_check(config))
    checks.extend(_database_checks(session, migrations_dir))
    checks.extend(_audit_checks(session, config))
    checks.append(_signing_key_check(config))
    try:
        store = store_factory()
        problems = store.check()
        checks.append(Check("object store", not problems,
                            f"{store.name} backend ready" if not problems else "; ".join(problems),
                            "check PDM_STORAGE_BACKEND / PDM_STORAGE_PATH and permissions"))
    except StorageError as exc:
        checks.append(Check("object store", False, str(exc), "check PDM_STORAGE_BACKEND"))
    checks.extend(_reconcile_check(session))
    checks.extend(_native_checks())
    return checks


def _reconcile_check(session: DbSession) -> list[Check]:
    """The last ``pdm reconcile`` / ``pdm verify-storage`` result (one indexed query)."""
    from .reconcile import last_run

    try:
        run = last_run(session)
    except sa.exc.SQLAlchemyError:
        session.rollback()
        return []  # the database checks above already say what is wrong
    if run is None:
        return [Check("storage consistency", True,
                      "never checked: run `pdm verify-storage` or `pdm reconcile`")]
    return [Check("storage consistency", run.ok, run.describe(),
                  "run: flask --app app pdm reconcile   (then --repair; see "
                  "docs/storage-consistency.md)")]


def _database_checks(session: DbSession, migrations_dir: Path) -> list[Check]:
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    url = session.get_bind().engine.url.render_as_string(hide_password=True)
    try:
        connection = session.connection()
        current = set(MigrationContext.configure(connection).get_current_heads())
    except sa.exc.SQLAlchemyError as exc:
        session.rollback()
        return [Check("database", False, f"{url}: cannot connect ({type(exc).__name__})",
                      "start the database server or fix PDM_DATABASE_URL")]
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    heads = set(ScriptDirectory.from_config(cfg).get_heads())
    checks = [Check("database", True, f"{url} reachable")]
    if current != heads:
        checks.append(Check("database schema", False,
                            f"at {sorted(current) or 'no revision'}, head is {sorted(heads)}",
                            "run: flask --app app pdm init   (applies the migrations)"))
        return checks
    checks.append(Check("database schema", True, f"at head {sorted(heads)}"))
    admins = session.scalar(
        sa.select(sa.func.count()).select_from(User)
        .join(roles_users, roles_users.c.user_id == User.id)
        .join(RoleRow, RoleRow.id == roles_users.c.role_id)
        .where(RoleRow.name == Role.ADMIN.value, User.active.is_(True))
    ) or 0
    checks.append(Check("administrator", admins > 0, f"{admins} active administrator(s)",
                        "run: flask --app app pdm init --admin-email you@example.org"))
    return checks


def _native_checks() -> list[Check]:
    checks = []
    try:
        import trimesh.ray

        has = bool(getattr(trimesh.ray, "has_embree", False))
        checks.append(Check("embreex (fast ray casting)", has,
                            "available" if has
                            else "missing: wall thickness would be ~1000× slower",
                            "pip install embreex"))
    except ImportError as exc:  # pragma: no cover - trimesh is a dependency
        checks.append(Check("trimesh", False, str(exc), "pip install trimesh"))
    from importlib.metadata import PackageNotFoundError, version

    try:
        import argon2  # noqa: F401

        checks.append(Check("argon2 password hashing", True,
                            f"argon2-cffi {version('argon2-cffi')}"))
    except (ImportError, PackageNotFoundError):  # pragma: no cover - a dependency
        checks.append(Check("argon2 password hashing", False, "missing", "pip install argon2-cffi"))
    return checks


def _audit_checks(session: DbSession, config: Mapping[str, Any]) -> list[Check]:
    """The audit chain head and the age of its last checkpoint (docs/audit-trail.md)."""
    from .audit_trail import status_check

    try:
        ok, detail = status_check(session, config)
    except sa.exc.SQLAlchemyError:
        session.rollback()
        return []  # the database checks above already report why
    return [Check("audit trail", ok, detail,
                  "run 'pdm worker' (it checkpoints the chain) or 'pdm audit-checkpoint'")]
def _retention_check(config: Mapping[str, Any]) -> Check:
    from ..retention import PolicyError, load_policy

    try:
        policy = load_policy(config.get("PDM_RETENTION_POLICY"))
    except PolicyError as exc:
        return Check("retention policy", False, "; ".join(exc.problems),
                     "fix the file named by PDM_RETENTION_POLICY (docs/retention.md), or unset "
                     "it for the built-in IMDRF policy; the server refuses to start until then")
    if policy.uses_seconds:
        return Check("retention policy", False, f"{policy.describe()} has periods in seconds",
                     "seconds are for tests only; use years or days")
    return Check("retention policy", True, policy.describe())


def _signing_key_check(config: Mapping[str, Any]) -> Check:
    """The installation's audit package signing key and its public key (to pin when verifying
    packages offline; docs/audit-package.md)."""
    from ..signing_key import SigningKeyError, key_problems, load_or_create, public_info

    path = str(config["PDM_SIGNING_KEY_PATH"])
    problems = key_problems(path)
    if problems:
        return Check("audit package signing key", False, "; ".join(problems),
                     "fix the file named above or set PDM_SIGNING_KEY_PATH")
    try:
        info = public_info(load_or_create(path))
    except SigningKeyError as exc:
        return Check("audit package signing key", False, str(exc),
                     "check PDM_SIGNING_KEY_PATH and the instance folder's permissions")
    return Check("audit package signing key", True,
                 f"Ed25519 public key {info.base64} ({info.fingerprint})")
