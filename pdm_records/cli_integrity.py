"""``pdm verify-case``: recompute every hash of a case and say which signature is valid or broken
(21 CFR Part 11 §11.10(a), §11.70; the check lives in ``services/integrity.py``)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from flask import current_app

from .cli import _fail, pdm
from .extensions import db


@pdm.command("verify-case")
@click.argument("case_number")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify_case_command(case_number: str, as_json: bool) -> None:
    """Re-check every signature and stored object of CASE_NUMBER.

    Each signature: its kept signed content and binding hashes, the record as the database holds
    it today, the signed-record object in the store, and every stored file it binds (read back
    and re-hashed). Exit 0 when all is intact, 1 when anything is broken, 2 when the case does
    not exist.
    """
    from .services.integrity import check_case, find_case_by_number

    case = find_case_by_number(db.session, case_number)
    if case is None:
        _fail(f"no case {case_number.strip().upper()}")
        return
    store = current_app.extensions["pdm_store_factory"]()
    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if as_json:
            return
        if bar is None:
            bar = click.progressbar(length=total, label="reading stored objects back",
                                    file=sys.stderr)
            bar.__enter__()
        bar.update(1)

    try:
        result = check_case(db.session, store, case, progress=progress)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    db.session.rollback()  # read only
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2, sort_keys=True))
    else:
        click.echo(f"case {result.case_number}: {len(result.signatures)} signature(s), "
                   f"{len(result.objects)} stored object(s)")
        for s in result.signatures:
            mark = click.style("valid ", fg="green") if s.valid else click.style("BROKEN",
                                                                                fg="red")
            click.echo(f"[{mark}] signature {s.signature_id}: {s.meaning} by {s.printed_name} "
                       f"<{s.signer_email}> at {s.signed_at} on {s.target_type} {s.target_id}")
            for reason in s.reasons:
                click.echo(f"         {reason}")
        for o in result.objects:
            mark = click.style("ok    ", fg="green") if o.ok else click.style("BROKEN", fg="red")
            click.echo(f"[{mark}] {o.label}: sha256 {o.sha256} ({o.key}"
                       f"{', version ' + o.version_id if o.version_id else ''})"
                       + ("" if o.ok else f": {o.reason}"))
        for e in result.envelopes:
            mark = click.style("ok    ", fg="green") if e.ok else click.style("BROKEN", fg="red")
            click.echo(f"[{mark}] envelope version {e.version} (id {e.envelope_version_id}): "
                       f"{e.reason}")
        if result.ok:
            click.secho("verdict: intact", fg="green")
        else:
            click.secho(f"verdict: BROKEN ({result.problems} problem(s))", fg="red")
    if not result.ok:
        sys.exit(1)
