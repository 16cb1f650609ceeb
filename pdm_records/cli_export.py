"""``pdm export-case``: the audit package of one or more cases (docs/audit-package.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import current_app

from .cli import _domain_error, _fail, pdm
from .errors import DomainError
from .extensions import db
from .storage import StorageError


def installation_key():  # type: ignore[no-untyped-def]
    """The installation's signing key (created on first use)."""
    from .signing_key import load_or_create

    return load_or_create(current_app.config["PDM_SIGNING_KEY_PATH"])


@pdm.command("export-case")
@click.argument("cases", nargs=-1, required=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Where to write the ZIP (default: audit-package-<CASE>.zip).")
def export_case_command(cases: tuple[str, ...], output: str | None) -> None:
    """Export the signed audit package of CASE (a case number or id; several make one
    package). Verify it with: python -m pdm_records.verify_package FILE."""
    from .services.export import find_cases, prepare_export, write_package
    from .signing_key import SigningKeyError, public_info

    try:
        key = installation_key()
    except SigningKeyError as exc:
        _fail(str(exc))
        return
    target = Path(output or f"audit-package-{cases[0]}.zip")
    try:
        store = current_app.extensions["pdm_store_factory"]()
        found = find_cases(db.session, cases)
        plan = prepare_export(db.session, store, actor=None, cases=found,
                              key_fingerprint=public_info(key).fingerprint)
        db.session.commit()  # the export is audited before anything is written
    except DomainError as exc:
        _domain_error(exc)
        return
    except StorageError as exc:
        db.session.rollback()
        _fail(f"the object store failed: {exc}", code=1)
        return
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as handle, click.progressbar(
                length=max(plan.total_bytes, 1), label="exporting", file=sys.stderr) as bar:
            summary = write_package(db.session, store, plan, handle, signing_key=key,
                                    site_name=current_app.config["PDM_SITE_NAME"],
                                    progress=bar.update)
        partial.replace(target)
    except (StorageError, OSError) as exc:
        partial.unlink(missing_ok=True)
        _fail(f"the package could not be written: {exc}", code=1)
        return
    finally:
        db.session.rollback()
    click.echo(f"{target}: {summary.files} files, {summary.size} bytes; cases "
               f"{', '.join(summary.numbers)}; audit events {summary.events} "
               f"(+{summary.stubs} stubs) up to checkpoint {summary.checkpoint_seq}")
    click.echo(f"signed by {summary.key_fingerprint}; manifest sha256 {summary.manifest_sha256}")
    click.echo(f"verify: python -m pdm_records.verify_package {target} --public-key "
               f"{public_info(key).base64}")
