"""``pdm sbom`` and ``pdm licence-check`` on the real installed environment.

The SBOM must validate against the CycloneDX 1.6 JSON schema and list every distribution pinned
by requirements.lock with its exact version, purl and licence (IMDRF N60 / FDA premarket
cybersecurity guidance: an SBOM of every component, DOMAIN.md §8).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from flask import Flask
from packaging.utils import canonicalize_name

from pdm_records import __version__, supply

ROOT = Path(__file__).resolve().parents[2]


def _lock() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[canonicalize_name(name)] = version.strip()
    return pins


@pytest.fixture(scope="module")
def sbom_text(tmp_path_factory: pytest.TempPathFactory) -> str:
    # Built once for the module: the inventory reads ~120 installed distributions.
    components, version = supply.inventory()
    return supply.sbom_json(components, version)


@pytest.fixture(scope="module")
def sbom(sbom_text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(sbom_text)
    return data


def test_sbom_validates_against_the_cyclonedx_schema(sbom_text: str) -> None:
    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sbom_text, all_errors=True)
    assert errors is None, errors


def test_sbom_lists_every_locked_distribution_with_version_purl_and_licence(
        sbom: dict[str, Any]) -> None:
    by_name = {canonicalize_name(c["name"]): c for c in sbom["components"]
               if c.get("purl", "").startswith("pkg:pypi/")}
    pins = _lock()
    assert len(pins) > 50
    missing = sorted(set(pins) - set(by_name))
    assert not missing, f"not in the SBOM: {missing}"
    for name, version in pins.items():
        component = by_name[name]
        assert component["version"] == version, name
        assert component["purl"] == f"pkg:pypi/{name}@{version}", name
        assert component.get("licenses"), f"{name} has no licence in the SBOM"


def test_sbom_describes_pdm_records_and_its_runtime_scope(sbom: dict[str, Any]) -> None:
    root = sbom["metadata"]["component"]
    assert (root["name"], root["version"]) == ("pdm-records", __version__)
    assert root["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    scopes = {canonicalize_name(c["name"]): c["scope"] for c in sbom["components"]
              if "purl" in c}
    assert scopes["flask"] == scopes["psycopg"] == scopes["gunicorn"] == "required"
    assert scopes["pytest"] == scopes["bandit"] == "excluded"  # development tools
    direct = next(d for d in sbom["dependencies"] if d["ref"] == "pdm-records")["dependsOn"]
    assert any(ref.startswith("pkg:pypi/flask@") for ref in direct)
    assert not any(ref.startswith("pkg:pypi/pytest@") for ref in direct)


def test_sbom_declares_licences_as_spdx(sbom: dict[str, Any]) -> None:
    def licence(name: str) -> Any:
        component = next(c for c in sbom["components"] if c["name"] == name)
        return component["licenses"][0]

    assert licence("psycopg") == {"license": {"id": "LGPL-3.0-only",
                                              "acknowledgement": "declared"}}
    assert licence("cryptography") == {"expression": "Apache-2.0 OR BSD-3-Clause",
                                       "acknowledgement": "declared"}


def test_sbom_nests_the_native_libraries_a_wheel_bundles(sbom: dict[str, Any]) -> None:
    scipy = next(c for c in sbom["components"] if c["name"] == "scipy")
    nested = {c["name"]: c["licenses"][0] for c in scipy.get("components", [])}
    assert nested["GCC runtime library"]["expression"] == \
        "GPL-3.0-or-later WITH GCC-exception-3.1"


def test_sbom_lists_vendored_front_end_files_with_hashes(sbom: dict[str, Any]) -> None:
    manifest = json.loads(supply.VENDORED_MANIFEST.read_text())
    for entry in manifest["components"]:
        component = next(c for c in sbom["components"] if c["name"] == entry["name"])
        assert component["version"] == entry["version"]
        expected = {hashlib.sha256((supply.STATIC_DIR / f).read_bytes()).hexdigest()
                    for f in entry["files"]}
        assert {h["content"] for h in component["hashes"]} == expected


def test_pdm_sbom_writes_the_file(app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "build" / "sbom.cdx.json"
    result = app.test_cli_runner().invoke(args=["pdm", "sbom", "--output", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["bomFormat"] == "CycloneDX" and data["specVersion"] == "1.6"
    nested = sum(len(c.get("components", [])) for c in data["components"])
    match = re.search(r"sbom: (\d+) components \((\d+) needed at run time\) written to",
                      result.output)
    assert match, result.output
    assert int(match.group(1)) == len(data["components"]) + nested
    assert 0 < int(match.group(2)) < int(match.group(1))


def test_pdm_sbom_refuses_a_broken_manifest(app: Flask, tmp_path: Path) -> None:
    manifest = tmp_path / "VENDORED.json"
    manifest.write_text('{"components": [{"name": "x"}]}')
    result = app.test_cli_runner().invoke(args=["pdm", "sbom", "--manifest", str(manifest)])
    assert result.exit_code == 2
    assert "lacks" in result.output


def test_licence_check_passes_with_the_reviewed_exceptions(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["pdm", "licence-check"])
    assert result.exit_code == 0, result.output
    assert "0 failures" in result.output
    assert re.search(r"^ok    psycopg [\d.]+: LGPL-3\.0-only \(weak-copyleft\): reviewed exception",
                     result.output, re.MULTILINE), result.output


def test_licence_check_fails_without_them(app: Flask, tmp_path: Path) -> None:
    empty = tmp_path / "allow.toml"
    empty.write_text("# no reviewed exceptions\n")
    result = app.test_cli_runner().invoke(args=["pdm", "licence-check", "--allowlist", str(empty)])
    assert result.exit_code == 1
    assert "FAIL  psycopg " in result.output
    assert "LGPL-3.0-only (weak-copyleft): no reviewed exception" in result.output
    assert "scipy > GCC runtime library" in result.output


def test_licence_check_fails_on_a_vendored_gpl_file(app: Flask, tmp_path: Path) -> None:
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "viewer.js").write_text("/* GPL */")
    manifest = tmp_path / "VENDORED.json"
    manifest.write_text(json.dumps({"components": [{
        "name": "copyleft-viewer", "version": "1.0", "licence": "GPL-3.0-or-later",
        "files": ["vendor/viewer.js"]}]}))
    result = app.test_cli_runner().invoke(args=["pdm", "licence-check", "--manifest",
                                                str(manifest)])
    assert result.exit_code == 1
    assert "FAIL  copyleft-viewer 1.0: GPL-3.0-or-later (strong-copyleft)" in result.output
    assert "1 failures" in result.output
