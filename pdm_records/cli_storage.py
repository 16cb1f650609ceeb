"""``pdm reconcile`` and ``pdm verify-storage``: the database and the object store agree.

Presentation only: the checks and repairs are :mod:`pdm_records.services.reconcile`.
Exit codes: 0 nothing unresolved, 1 discrepancies remain, 2 the store or the database cannot be
reached (never a traceback).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
import sqlalchemy as sa
from flask import current_app

from .cli import pdm
from .clock import utcnow
from .extensions import db
from .services import reconcile as rec
from .storage import ObjectStore, StorageError, StorageUnavailable

T = TypeVar("T")

EXIT_DISCREPANCIES = 1
EXIT_UNAVAILABLE = 2


class _Abort(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@contextmanager
def _guarded(as_json: bool) -> Iterator[None]:
    """Storage or database down → a clear message and exit 2; the transaction rolls back."""
    try:
        yield
    except _Abort as exc:
        _fail_run(as_json, exc.code, exc.message)
    except StorageUnavailable as exc:
        _fail_run(as_json, "storage_unavailable", f"storage unavailable: {exc}")
    except StorageError as exc:
        _fail_run(as_json, "storage_error", f"storage error: {exc}")
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        _fail_run(as_json, "database_unavailable",
                  f"database unavailable or not migrated ({type(exc).__name__}): check "
                  "PDM_DATABASE_URL and run `pdm doctor`")


def _fail_run(as_json: bool, code: str, message: str) -> None:
    db.session.rollback()
    if as_json:
        click.echo(json.dumps({"ok": False, "error": code, "message": message}))
    else:
        click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(EXIT_UNAVAILABLE)


def _store() -> ObjectStore:
    """The configured store, checked first (reachable, writable; on S3 Object Lock enabled)."""
    store: ObjectStore = current_app.extensions["pdm_store_factory"]()
    problems = store.check()
    if problems:
        raise _Abort("storage_unavailable", "storage unavailable: " + "; ".join(problems))
    return store


def _progress(items: list[T], label: str) -> Any:
    # Progress goes to stderr so that --json output stays one clean document on stdout.
    return click.progressbar(items, label=label, file=sys.stderr, show_pos=True,
                             show_eta=True, width=30)


def _line(finding: rec.Finding) -> str:
    where = f"{finding.row_type} {finding.row_id}" if finding.row_type else "no row"
    if finding.case_id:
        where += f" (case id {finding.case_id})"
    text = f"  {finding.kind.value.upper():<17} {finding.key} [{where}]: {finding.detail}"
    if finding.repair:
        text += f"\n  {'':<17} → {finding.repair}"
    return text


def _report(command: str, store: ObjectStore, findings: list[rec.Finding],
            summary: dict[str, Any], as_json: bool, known_orphans: list[str]) -> None:
    if as_json:
        click.echo(json.dumps({"command": command, "store": store.name,
                               "lock_mode": store.lock_mode, **summary,
                               "findings": [f.as_dict() for f in findings if not f.known],
                               "known": [f.as_dict() for f in findings if f.known],
                               "known_orphans": known_orphans}, indent=2, sort_keys=True))
        return
    new = [f for f in findings if not f.known]
    known = [f for f in findings if f.known]
    click.echo(f"{command}: {store.name} store (lock mode {store.lock_mode}), "
               f"{summary['checked']} indexed object(s) checked"
               + (f", {summary['store_keys']} key(s) in the store"
                  if summary.get("store_keys") is not None else ""))
    for finding in new:
        click.echo(_line(finding))
    if known or known_orphans:
        click.echo(f"known from earlier runs: {len(known_orphans)} quarantined orphan(s), "
                   f"{len(known)} damaged record(s) still missing or altered")
    kinds = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in summary["by_kind"].items())
    colour = "green" if summary["ok"] else "red"
    click.secho(f"{summary['discrepancies']} discrepanc"
                f"{'y' if summary['discrepancies'] == 1 else 'ies'}"
                + (f" ({kinds})" if kinds else "")
                + f"; repaired {summary['repaired']}; unresolved {summary['unresolved']}",
                fg=colour)


def _check_indexed(store: ObjectStore, expected: list[rec.Expected], label: str, workers: int,
                   now: datetime) -> list[rec.Finding]:
    """Observe every indexed object (in parallel) and compare it with its row, with progress."""
    findings: list[rec.Finding] = []
    with _progress(expected, label) as bar:
        for item, observed in rec.observe_all(store, expected, workers=workers):
            findings.extend(rec.compare_object(item, observed, lock_mode=store.lock_mode,
                                               now=now))
            bar.update(1)
    return findings


@pdm.command("reconcile")
@click.option("--repair", is_flag=True,
              help="Extend under-locked objects, quarantine orphans, mark rows whose object is "
                   "missing or altered as damaged (with an alert event).")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Objects checked in parallel (S3 round trips overlap).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def reconcile_command(repair: bool, as_json: bool, workers: int) -> None:
    """Find every discrepancy between the database and the object store.

    Orphans (objects no row indexes), rows whose object is missing or altered (SHA-256/size,
    read back), locks weaker than the database's retain-until, legal-hold mismatches. Exit 0
    when nothing is unresolved, 1 while discrepancies remain, 2 when storage or database is down.
    """
    now = utcnow()
    with _guarded(as_json):
        store = _store()
        expected = rec.expected_objects(db.session, store.name)
        findings = _check_indexed(store, expected, "checking indexed objects", workers, now)
        store_keys = list(store.iter_keys())
        new_keys, known_orphans = rec.split_orphans(
            store_keys, {e.key for e in expected}, rec.quarantined_keys(db.session, store.name))
        with _progress(new_keys, "describing orphans") as bar:
            findings.extend(rec.orphan_finding(store, key, now) for key in bar)
        db.session.rollback()  # nothing was written while looking; repairs start clean
        if repair:
            todo = [f for f in findings if not f.known]
            with _progress(todo, "repairing") as bar:
                for finding in bar:
                    try:
                        rec.repair(db.session, store, finding, actor=None, now=now)
                    except StorageUnavailable:
                        raise
                    except StorageError as exc:
                        db.session.rollback()
                        finding.repair = f"repair failed: {exc}"
                        continue
                    db.session.commit()  # each repair with its audit event, one at a time
        summary = rec.summarize(findings, checked=len(expected), store_keys=len(store_keys),
                                known_quarantined=len(known_orphans))
        summary["repair"] = repair
        rec.record_run(db.session, command="reconcile", store=store, summary=summary)
        db.session.commit()
    _report("reconcile", store, findings, summary, as_json, known_orphans)
    sys.exit(0 if summary["ok"] else EXIT_DISCREPANCIES)


@pdm.command("verify-storage")
@click.option("--workers", type=click.IntRange(1, 64), default=8, show_default=True,
              help="Objects checked in parallel (S3 round trips overlap).")
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def verify_storage_command(as_json: bool, workers: int) -> None:
    """Check every indexed object: present, SHA-256 read back, lock mode and retain-until in
    storage at least the database's, legal hold. Exit 1 on any discrepancy, 2 when storage or
    database is down. Changes nothing (``pdm reconcile --repair`` repairs)."""
    now = utcnow()
    with _guarded(as_json):
        store = _store()
        expected = rec.expected_objects(db.session, store.name)
        findings = _check_indexed(store, expected, "verifying stored objects", workers, now)
        db.session.rollback()
        # Known damage is still damage: verify-storage fails while any record is not intact.
        for finding in findings:
            finding.known = False
        summary = rec.summarize(findings, checked=len(expected), store_keys=None)
        rec.record_run(db.session, command="verify-storage", store=store, summary=summary)
        db.session.commit()
    _report("verify-storage", store, findings, summary, as_json, [])
    sys.exit(0 if summary["ok"] else EXIT_DISCREPANCIES)

