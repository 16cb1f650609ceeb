"""``flask --app app pdm …``: the same services as the web, for operators.

Commands never refuse to start on a broken configuration; ``pdm doctor`` reports it.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from .errors import DomainError
from .extensions import db
from .permissions import Role

pdm = AppGroup("pdm", help="pdm-records administration commands.")


def register(app: Flask) -> None:
    app.cli.add_command(pdm)


def _fail(message: str, code: int = 2) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def _domain_error(exc: DomainError, code: int = 2) -> None:
    db.session.rollback()
    lines = [exc.message]
    for field, messages in exc.field_errors.items():
        lines.extend(f"  {field}: {m}" for m in messages)
    _fail("\n".join(lines), code)


def _migrations_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "migrations"


@pdm.command("init")
@click.option("--admin-email", default="admin@example.org", show_default=True,
              help="E-mail of the first administrator (created only if no administrator exists).")
@click.option("--admin-password", default=None, envvar="PDM_ADMIN_PASSWORD",
              help="Password of the first administrator [env PDM_ADMIN_PASSWORD]; "
                   "generated and printed once when omitted.")
@click.option("--admin-name", default="Administrator", show_default=True)
def init_command(admin_email: str, admin_password: str | None, admin_name: str) -> None:
    """Apply database migrations and create the first administrator. Safe to run twice."""
    from flask_migrate import upgrade

    from .services import doctor, users

    Path(current_app.instance_path).mkdir(parents=True, exist_ok=True)
    upgrade(directory=str(_migrations_dir()))
    click.echo("database: migrated to head")
    users.ensure_roles(db.session)
    from .signing_key import SigningKeyError, load_or_create, public_info

    try:
        key_info = public_info(load_or_create(current_app.config["PDM_SIGNING_KEY_PATH"]))
        click.echo(f"audit package signing key: {key_info.fingerprint}")
    except SigningKeyError as exc:
        click.secho(f"audit package signing key: {exc}", fg="red", err=True)
    checks = {c.name: c for c in doctor._database_checks(db.session, _migrations_dir())}
    if checks.get("administrator") and checks["administrator"].ok:
        db.session.commit()
        click.echo("administrator: exists already (nothing changed)")
        return
    generated = admin_password is None
    password = admin_password or secrets.token_urlsafe(16)
    try:
        users.create_user(db.session, actor=None, email=admin_email, password=password,
                          printed_name=admin_name, roles=[Role.ADMIN.value])
    except DomainError as exc:
        _domain_error(exc)
    db.session.commit()
    click.echo(f"administrator: created {admin_email}")
    if generated:
        click.echo(f"administrator password (shown once): {password}")


@pdm.command("create-user")
@click.option("--email", required=True)
@click.option("--name", "printed_name", required=True, help="Printed name (shown on signatures).")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice([r.value for r in Role]), help="Repeat for several roles.")
@click.option("--password", default=None, envvar="PDM_NEW_USER_PASSWORD",
              help="[env PDM_NEW_USER_PASSWORD]; generated and printed once when omitted.")
@click.option("--registration-number", default=None, help="Prescriber licence (clinicians).")
@click.option("--site-id", type=int, default=None)
def create_user_command(email: str, printed_name: str, roles: tuple[str, ...],
                        password: str | None, registration_number: str | None,
                        site_id: int | None) -> None:
    """Create an account."""
    from marshmallow import ValidationError as SchemaError

    from .schemas import UserCreateSchema, flatten_messages
    from .services import users

    generated = password is None
    password = password or secrets.token_urlsafe(16)
    try:
        data = UserCreateSchema().load({
            "email": email, "printed_name": printed_name, "password": password,
            "roles": list(roles), "registration_number": registration_number,
            "site_id": site_id})
        user = users.create_user(db.session, actor=None, **data)
    except SchemaError as exc:
        _domain_error(DomainError("The account could not be created.",
                                  flatten_messages(exc.messages)))
        return
    except DomainError as exc:
        _domain_error(exc)
        return
    db.session.commit()
    click.echo(f"created {user.email} ({', '.join(user.role_names)})")
    if generated:
        click.echo(f"password (shown once): {password}")


@pdm.command("create-token")
@click.argument("user_email")
@click.option("--name", default="cli", show_default=True)
@click.option("--days", type=click.IntRange(1, 3650), default=None,
              help="Lifetime in days [default: PDM_TOKEN_EXPIRY_DAYS]")
def create_token_command(user_email: str, name: str, days: int | None) -> None:
    """Create an API bearer token for USER_EMAIL and print it (once)."""
    from .services import users

    user = users.find_user_by_email(db.session, user_email)
    if user is None or not user.active:
        _fail(f"no active account {user_email!r}")
        return
    try:
        _, secret = users.create_token(
            db.session, actor=None, user=user, name=name,
            expiry_days=days or current_app.config["PDM_TOKEN_EXPIRY_DAYS"])
    except DomainError as exc:
        _domain_error(exc)
        return
    db.session.commit()
    click.echo(secret)


@pdm.command("reset-mfa")
@click.argument("email")
@click.option("--reason", required=True,
              help="Why (e.g. 'phone lost, ticket 1234'); kept in the audit trail.")
def reset_mfa_command(email: str, reason: str) -> None:
    """Reset the lost second factor of EMAIL: they set up a new authenticator at next sign-in.

    For the server operator, when no other administrator can do it in the browser (for example
    the only administrator lost their phone). Removes the authenticator key and recovery codes
    and ends the account's sessions; audited as ``mfa.reset`` by ``system``. Exit 1 when there
    is no such account or it has no second factor.
    """
    from .security.events import security_event
    from .security.mfa import mfa_required
    from .services import auth, users

    user = users.find_user_by_email(db.session, email)
    if user is None:
        _fail(f"no account {email!r}; nothing was changed", code=1)
        return
    try:
        done = auth.reset_second_factor(db.session, actor=None, user=user, reason=reason)
    except DomainError as exc:
        _domain_error(exc, code=1)
        return
    db.session.commit()
    security_event("mfa.reset", user_id=done.user_id, email=done.email, by="cli")
    click.echo(f"two-factor sign-in of {done.email} reset: {done.method} key and "
               f"{done.recovery_codes_removed} recovery code(s) removed, sessions ended "
               "(audit event mfa.reset)")
    if mfa_required(user):
        click.echo("their role requires two-factor sign-in: they set up a new authenticator "
                   "app right after their password at the next sign-in")
    else:
        click.echo("their roles do not require two-factor sign-in: they sign in with the "
                   "password and may enrol again under their name → Two-factor sign-in")


@pdm.command("demo")
@click.option("--password", default=None, envvar="PDM_DEMO_PASSWORD",
              help="One password for every demo account [env PDM_DEMO_PASSWORD]; "
                   "random ones are generated and printed otherwise.")
def demo_command(password: str | None) -> None:
    """Load demo sites, device types and one account per role. Safe to run twice."""
    from .services.demo import load_demo

    try:
        logins = load_demo(db.session, password=password,
                           store=current_app.extensions["pdm_store_factory"]())
    except DomainError as exc:
        _domain_error(exc)
        return
    db.session.commit()
    click.echo("Demo accounts (passwords are reset each time this runs):")
    for login in logins:
        click.echo(f"  {login.role:<10} {login.email:<26} {login.password}")
    enrolled = [login for login in logins if login.totp_key]
    if enrolled:
        click.echo("Two-factor sign-in (required for these roles): add the key to an "
                   "authenticator app, or open the otpauth:// URI on the phone:")
        for login in enrolled:
            click.echo(f"  {login.email:<26} TOTP key {login.totp_key}")
            click.echo(f"  {'':<26} {login.totp_uri}")


@pdm.command("check-mesh", context_settings={
    "ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def check_mesh_command(args: tuple[str, ...]) -> None:
    """Report on a mesh file without touching the database: PATH [--units mm]
    [--envelope FILE] [--json]. Exit 0 read (and passed), 1 failed the envelope, 2 unreadable.
    ``check-mesh --help`` lists every option."""
    from .geometry.cli import main

    sys.exit(main(list(args)))


@pdm.group("envelope")
def envelope_group() -> None:
    """Design envelopes as YAML or JSON documents."""


@envelope_group.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--device-type-id", type=int, required=True)
@click.option("--author", "author_email", required=True,
              help="E-mail of the quality user drafting it (another one approves it).")
@click.option("--password", "author_password", required=True, envvar="PDM_AUTHOR_PASSWORD",
              help="The author's password [env PDM_AUTHOR_PASSWORD]: drafting is done in their "
                   "name, so it is checked like a signature.")
@click.option("--notes", default="")
def envelope_import(path: str, device_type_id: int, author_email: str, author_password: str,
                    notes: str) -> None:
    """Draft a new envelope version from a YAML or JSON file (approve it in the UI or API)."""
    from flask_security import verify_password

    from .services import envelopes, users

    author = users.find_user_by_email(db.session, author_email)
    if author is None or not author.active:
        _fail(f"no active account {author_email!r}")
        return
    # Drafting is not signing: the password identifies the author (the approval is signed,
    # with the second factor, in the API).
    try:
        if not author.password or not verify_password(author_password, author.password):
            raise DomainError("wrong password")
    except DomainError:
        _fail(f"the password of {author_email} is not correct; nothing was drafted")
        return
    text = Path(path).read_text(encoding="utf-8")
    try:
        definition = envelopes.parse_document(text, envelopes.document_format(path))
    except DomainError as exc:
        _fail(f"{path}: {exc.message}")
        return
    try:
        version = envelopes.create_draft(db.session, actor=author, device_type_id=device_type_id,
                                         definition=definition, notes=notes)
    except DomainError as exc:
        _domain_error(exc)
        return
    db.session.commit()
    click.echo(f"drafted envelope version {version.version} (id {version.id}) for device type "
               f"{device_type_id}; another quality user must approve it")


@envelope_group.command("export")
@click.argument("version_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["yaml", "json"]), default="yaml",
              show_default=True)
def envelope_export(version_id: int, fmt: str) -> None:
    """Print an envelope version's limits (with its status and content hash as comments)."""
    from .services import envelopes

    try:
        version = envelopes.get_version(db.session, version_id)
    except DomainError as exc:
        _domain_error(exc)
        return
    click.echo(envelopes.export_document(version, fmt), nl=False)


@pdm.command("worker")
@click.option("--once", is_flag=True, help="Run the queued jobs, then exit.")
@click.option("--poll-seconds", type=float, default=1.0, show_default=True)
@click.option("--stale-after", type=int, default=900, show_default=True,
              help="Seconds after which a running job whose worker vanished is re-queued.")
def worker_command(once: bool, poll_seconds: float, stale_after: int) -> None:
    """Run background jobs (design verification). Stops cleanly on SIGTERM or Ctrl-C."""
    import signal
    import socket
    import time
    from datetime import timedelta

    from .cli_audit import run_due_checkpoint
    from .services import jobs

    problems = current_app.extensions.get("pdm_config_problems", [])
    if problems and current_app.config["PDM_ENV"] == "production":
        _fail("refusing to start on a broken configuration: " + "; ".join(problems))
    store = current_app.extensions["pdm_store_factory"]()
    name = f"{socket.gethostname()}:{os.getpid()}"
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    click.echo(f"worker {name} started")
    done = 0
    try:
        while not stopping:
            if jobs.recover_stale(db.session, timeout=timedelta(seconds=stale_after)):
                click.echo("re-queued or failed jobs of a vanished worker")
            db.session.commit()
            run_due_checkpoint(store)
            job = jobs.claim_next(db.session, name)
            db.session.commit()
            if job is None:
                if once:
                    break
                time.sleep(poll_seconds)
                continue
            click.echo(f"job {job.id} ({job.kind}) started")
            jobs.run(db.session, store, job)
            db.session.commit()
            done += 1
            click.echo(f"job {job.id} {job.status.value}" + (f": {job.error}" if job.error
                                                              else ""))
    except KeyboardInterrupt:
        pass
    click.echo(f"worker {name} stopped after {done} job(s)")


@pdm.command("create-bucket")
def create_bucket_command() -> None:
    """Create PDM_S3_BUCKET with Object Lock (and so versioning) enabled, then check it."""
    from .storage import StorageError
    from .storage.s3 import build_client, create_bucket

    config = current_app.config
    if not config.get("PDM_S3_BUCKET"):
        _fail("set PDM_S3_BUCKET (and PDM_S3_ENDPOINT_URL for a non-AWS server) first")
        return
    endpoint = config.get("PDM_S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL")
    try:
        create_bucket(build_client(endpoint, config.get("PDM_S3_REGION")),
                      config["PDM_S3_BUCKET"], config.get("PDM_S3_REGION"))
        problems = current_app.extensions["pdm_store_factory"]().check()
    except StorageError as exc:
        _fail(str(exc))
        return
    if problems:
        _fail("; ".join(problems))
    click.echo(f"bucket {config['PDM_S3_BUCKET']} ready: Object Lock and versioning enabled "
               f"(lock mode {config['PDM_S3_LOCK_MODE']})")


@pdm.command("doctor")
def doctor_command() -> None:
    """Check configuration, database, storage and native extensions; exit 1 on any problem."""
    from .services.doctor import run_checks

    checks = run_checks(
        config=current_app.config,
        config_problems=current_app.extensions.get("pdm_config_problems", []),
        session=db.session,
        migrations_dir=_migrations_dir(),
        store_factory=current_app.extensions["pdm_store_factory"],
    )
    failed = 0
    for check in checks:
        mark = click.style("ok  ", fg="green") if check.ok else click.style("FAIL", fg="red")
        click.echo(f"[{mark}] {check.name}: {check.detail}")
        if not check.ok:
            failed += 1
            if check.fix:
                click.echo(f"       fix: {check.fix}")
    click.echo(f"environment: {current_app.config['PDM_ENV']}; instance folder: "
               f"{current_app.instance_path}; pid {os.getpid()}")
    if failed:
        click.secho(f"{failed} problem(s) found", fg="red")
        sys.exit(1)
    click.secho("all checks passed", fg="green")


from . import (  # noqa: E402,F401
    cli_audit,
    cli_export,
    cli_integrity,
    cli_retention,
    cli_storage,
    cli_supply,
)
