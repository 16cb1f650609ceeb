"""``pdm dispose`` and ``pdm retention-report``: retention for operators (docs/retention.md)."""

from __future__ import annotations

import json
import sys

import click
import sqlalchemy as sa
from flask import current_app

from .cli import _domain_error, _fail, pdm
from .clock import utcnow
from .errors import DomainError
from .extensions import db
from .models import Case


def _find_case(ref: str) -> Case | None:
    if ref.isdigit():
        return db.session.get(Case, int(ref)) if 0 < int(ref) < 2**31 else None
    return db.session.scalar(sa.select(Case).where(Case.number == ref.strip().upper()))


@pdm.command("dispose")
@click.option("--case", "case_ref", default=None,
              help="Case number (PDM-YYYY-NNNNNN) or id to dispose of; omit to list eligible "
                   "cases.")
@click.option("--signer", "signer_email", default=None,
              help="E-mail of the quality user who reviews and signs the disposal.")
@click.option("--password", default=None, envvar="PDM_SIGNER_PASSWORD",
              help="The signer's password [env PDM_SIGNER_PASSWORD] (21 CFR 11.200).")
@click.option("--totp-code", default=None, envvar="PDM_SIGNER_TOTP_CODE",
              help="A current code from the signer's authenticator app, when they have enrolled "
                   "one [env PDM_SIGNER_TOTP_CODE].")
@click.option("--reason", default="", help="Why the records are destroyed (kept in the tombstone).")
def dispose_command(case_ref: str | None, signer_email: str | None, password: str | None,
                    totp_code: str | None,
                    reason: str) -> None:
    """List cases whose retention has ended and that have no hold, or dispose of one.

    Disposal writes a signed tombstone first, then deletes every object by version, recording
    each. An interrupted disposal exits 1 and is completed by running the same command again.
    """
    from .services import requests as cases_svc
    from .services import retention as svc
    from .services import users

    now = utcnow()
    if case_ref is None:
        rows = list(db.session.scalars(svc.eligible_query(now)))
        if not rows:
            click.echo("no case is eligible for disposal")
            return
        click.echo(f"{len(rows)} case(s) eligible for disposal (retention ended, no hold):")
        for case in rows:
            until = (f"{case.retain_until:%Y-%m-%d %H:%M:%S} UTC" if case.retain_until
                     else "(no deadline)")
            click.echo(f"  {case.number}  {case.device_type.name}  retained until {until}")
        return
    if not signer_email:
        _fail("--signer is required to dispose (a quality user signs the disposal)")
        return
    signer = users.find_user_by_email(db.session, signer_email)
    if signer is None or not signer.active:
        _fail(f"no active account {signer_email!r}")
        return
    found = _find_case(case_ref)
    if found is None:
        _fail(f"no case {case_ref!r}")
        return
    store = current_app.extensions["pdm_store_factory"]()
    try:
        case = cases_svc.get_case(db.session, signer, found.id, lock=True, disposal=True)
        tomb = svc.start_disposal(db.session, store, actor=signer, case=case, reason=reason,
                                  password=password, totp_code=totp_code, now=now)
        db.session.commit()
    except DomainError as exc:
        _domain_error(exc)
        return
    tomb_id, number = tomb.id, case.number
    remaining = sum(1 for i in tomb.items if i.deleted_at is None)
    click.echo(f"tombstone {tomb.record_key} written; deleting {remaining} object(s)")
    try:
        with click.progressbar(length=remaining, label=f"disposing of {number}",
                               file=sys.stderr) as bar:
            for _item in svc.run_disposal(db.session, store, actor=signer, tombstone=tomb,
                                          now=now):
                db.session.commit()
                bar.update(1)
        db.session.commit()
    except DomainError as exc:
        db.session.rollback()
        svc.record_interruption(db.session, actor=signer, tombstone_id=tomb_id,
                                message=exc.message)
        db.session.commit()
        _fail(exc.message, code=1)
        return
    click.echo(f"{number} disposed: {len(tomb.items)} object(s) deleted; tombstone kept")


@pdm.command("retention-report")
@click.option("--within-days", type=click.IntRange(1, 36_500), default=90, show_default=True,
              help="List retention deadlines that fall within this many days.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def retention_report_command(within_days: int, as_json: bool) -> None:
    """Upcoming expiries, cases eligible for disposal, and active legal holds."""
    from .services import retention as svc

    try:
        report = svc.retention_report(db.session, now=utcnow(), within_days=within_days)
    except DomainError as exc:
        _domain_error(exc)
        return
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    click.echo(f"retention report {report['generated_at']}; policy: {report['policy']}")
    sections = (("expiring within " + str(within_days) + " days", report["expiring"]),
                ("eligible for disposal", report["eligible_for_disposal"]))
    for title, rows in sections:
        click.echo(f"{title}: {len(rows)}")
        for row in rows:
            click.echo(f"  {row['number']}  {row['retention_class']:<11}  until "
                       f"{row['retain_until']}  ({row['device_type']})")
    click.echo(f"active legal holds: {len(report['holds'])}")
    for hold in report["holds"]:
        click.echo(f"  {hold['case_number']}  since {hold['placed_at']}  by "
                   f"{hold['placed_by']}: {hold['reason']}")
