"""``pdm sbom`` and ``pdm licence-check``: the supply chain of the running installation.

Both read only the installed distributions and ``web/static/VENDORED.json`` (no database, no
object store), so they work on a broken configuration too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import supply
from .cli import _fail, pdm


def _inventory(manifest: Path) -> tuple[list[supply.Component], str]:
    try:
        return supply.inventory(manifest)
    except supply.ManifestError as exc:
        _fail(str(exc))
        raise  # unreachable: _fail exits


@pdm.command("sbom")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the SBOM to this file (parent folders are created); default: stdout.")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              default=supply.VENDORED_MANIFEST, show_default=False,
              help="Vendored front-end components (default: web/static/VENDORED.json).")
def sbom_command(output: Path | None, manifest: Path) -> None:
    """Print a CycloneDX 1.6 SBOM (JSON) of the installed components and their licences.

    Lists every installed Python distribution (scope "required" when pdm-records needs it at run
    time, "excluded" for development tools), the native libraries wheels declare as bundled
    (nested in their wheel), and the vendored front-end files with their SHA-256.
    """
    components, version = _inventory(manifest)
    text = supply.sbom_json(components, version)
    if output is None:
        click.echo(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text + "\n", encoding="utf-8")
    runtime = sum(1 for c in components if c.runtime)
    click.echo(f"sbom: {len(components)} components ({runtime} needed at run time) "
               f"written to {output}", err=True)


@pdm.command("licence-check")
@click.option("--allowlist", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=supply.DEFAULT_ALLOWLIST, show_default=False,
              help="Reviewed exceptions (default: pdm_records/licence-allowlist.toml).")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path),
              default=supply.VENDORED_MANIFEST, show_default=False)
@click.option("--verbose", "-v", is_flag=True, help="List every component, not only exceptions.")
def licence_check_command(allowlist: Path, manifest: Path, verbose: bool) -> None:
    """Fail (exit 1) when a component is not permissively licensed and has no reviewed exception.

    Strong copyleft (GPL, AGPL, …), weak copyleft (LGPL, MPL, …) and unknown licences each need
    an entry in the allowlist naming the component, its exact licence and a justification.
    """
    try:
        entries = supply.load_allowlist(allowlist)
    except (OSError, ValueError) as exc:
        _fail(f"allowlist {allowlist}: {exc}")
    components, _version = _inventory(manifest)
    report = supply.check_licences(components, entries)
    for finding in report.findings:
        comp = finding.component
        line = f"{comp.display_name} {comp.version or ''}".strip()
        line = f"{line}: {comp.licence.label} ({finding.category.value})"
        if not finding.ok:
            click.secho(f"FAIL  {line}: no reviewed exception", fg="red")
        elif finding.allowed_by is not None:
            click.echo(f"ok    {line}: reviewed exception ({finding.allowed_by.reviewed})")
        elif verbose:
            click.echo(f"ok    {line}")
    for entry in report.unused_exceptions:
        click.echo(f"note  exception for {entry.component} ({entry.licence}) matches no "
                   "installed component")
    counts = ", ".join(f"{report.count(c)} {c.value}" for c in supply.LicenceCategory)
    excepted = sum(1 for f in report.findings if f.allowed_by is not None)
    summary = (f"licence check: {len(report.findings)} components ({counts}); "
               f"{excepted} reviewed exceptions; {len(report.failures)} failures")
    if report.failures:
        click.secho(summary, fg="red")
        sys.exit(1)
    click.secho(summary, fg="green")
