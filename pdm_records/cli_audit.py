"""``pdm audit-checkpoint`` and ``pdm verify-audit``: the hash-chained audit trail
(21 CFR Part 11 §11.10(e); docs/audit-trail.md)."""

from __future__ import annotations

import json
import logging
import sys

import click
import sqlalchemy as sa
from flask import current_app

from .cli import _fail, pdm
from .extensions import db
from .storage import ObjectStore, StorageError

log = logging.getLogger(__name__)

PROGRESS_FROM = 10_000  # show a progress bar for chains at least this long


def run_due_checkpoint(store: ObjectStore) -> None:
    """For the ``pdm worker`` loop: checkpoint the chain head if it is due. Never raises: a
    failure is logged and retried on the next loop."""
    from .errors import DomainError
    from .services.audit_trail import checkpoint_due, take_checkpoint

    config = current_app.config
    try:
        if not checkpoint_due(db.session, every=int(config["PDM_AUDIT_CHECKPOINT_EVERY"]),
                              seconds=int(config["PDM_AUDIT_CHECKPOINT_SECONDS"])):
            db.session.rollback()
            return
        row = take_checkpoint(db.session, store)
        db.session.commit()
    except (StorageError, DomainError, sa.exc.SQLAlchemyError) as exc:
        db.session.rollback()
        message = getattr(exc, "message", None) or str(exc)
        log.error("audit checkpoint failed: %s", message)
        click.echo(f"audit checkpoint failed (retried later): {message}", err=True)
        return
    if row is not None:
        click.echo(f"audit checkpoint at event {row.seq} written to {row.key}")


@pdm.command("audit-checkpoint")
def audit_checkpoint_command() -> None:
    """Write the audit chain head to write-once storage now (after verifying the events since
    the last checkpoint). Exit 1 when the chain is broken or the store fails."""
    from .errors import DomainError
    from .services.audit_trail import chain_head, take_checkpoint

    try:
        store = current_app.extensions["pdm_store_factory"]()
        row = take_checkpoint(db.session, store)
        db.session.commit()
    except StorageError as exc:
        db.session.rollback()
        _fail(f"the object store refused the checkpoint: {exc}", code=1)
        return
    except DomainError as exc:
        db.session.rollback()
        _fail(exc.message, code=1)
        return
    if row is None:
        seq, _ = chain_head(db.session)
        click.echo("the audit trail is empty; nothing to checkpoint" if seq == 0 else
                   f"event {seq} (the chain head) is checkpointed already")
        return
    click.echo(f"checkpoint: event {row.seq} hash {row.hash}")
    click.echo(f"stored as {row.key} (version {row.version_id or '-'}, sha256 {row.sha256})")


@pdm.command("verify-audit")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify_audit_command(as_json: bool) -> None:
    """Verify the audit chain from the database against every checkpoint in write-once storage.
    Names the first broken event; exit 0 only when the trail is intact."""
    from .services.audit_trail import event_count, verify_audit

    try:
        store = current_app.extensions["pdm_store_factory"]()
        total = event_count(db.session)
        if total >= PROGRESS_FROM:
            with click.progressbar(length=total, label="verifying the audit chain",
                                   file=sys.stderr) as bar:
                report = verify_audit(db.session, store, progress=bar.update)
        else:
            report = verify_audit(db.session, store)
    except StorageError as exc:
        _fail(f"the object store cannot be read: {exc}", code=2)
        return
    finally:
        db.session.rollback()
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))
    else:
        verdict = report.verdict
        click.echo(f"events verified: {verdict.events}; head: event {verdict.head_seq} "
                   f"({verdict.head_hash}); checkpoints: {report.checkpoints}")
        for problem in report.problems:
            click.secho(f"problem: {problem}", fg="red")
        if verdict.first_break is not None:
            brk = verdict.first_break
            click.secho(f"BROKEN at event {brk.seq}: {brk.reason}: {brk.detail}", fg="red")
        elif report.ok:
            click.secho("audit trail intact", fg="green")
    sys.exit(0 if report.ok else 1)
