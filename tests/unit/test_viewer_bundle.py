"""The committed 3D viewer bundle is the one its sources build (scripts/build-viewer).

The product serves pdm_records/web/static/viewer/viewer.js as a static file so that nothing at
run time needs npm or a CDN. The build script records the SHA-256 of the sources and of the
bundle in viewer.manifest.json; these tests recompute both, so a source edit without a rebuild
(or a hand edit of the bundle) fails here, with the command to run.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "frontend" / "viewer"
STATIC = ROOT / "pdm_records" / "web" / "static" / "viewer"
REBUILD = "run `bash scripts/build-viewer` and commit pdm_records/web/static/viewer/"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def sources_sha256() -> str:
    """What scripts/build-viewer computes: sha256 over "<sha256>  <path>" lines of every source
    file (the script itself, package.json, package-lock.json, src/), sorted by path."""
    files = [ROOT / "scripts" / "build-viewer", SOURCE / "package.json",
             SOURCE / "package-lock.json",
             *(p for p in (SOURCE / "src").rglob("*") if p.is_file())]
    names = sorted(p.relative_to(ROOT).as_posix() for p in files)
    lines = "".join(f"{_sha256(ROOT / name)}  {name}\n" for name in names)
    return hashlib.sha256(lines.encode()).hexdigest()


def _manifest() -> dict[str, str]:
    return json.loads((STATIC / "viewer.manifest.json").read_text())  # type: ignore[no-any-return]


def test_the_bundle_was_rebuilt_after_the_last_source_change() -> None:
    assert _manifest()["sources_sha256"] == sources_sha256(), (
        "frontend/viewer changed but the bundle was not rebuilt: " + REBUILD)


def test_the_bundle_is_the_one_the_build_wrote() -> None:
    assert _manifest()["bundle_sha256"] == _sha256(STATIC / "viewer.js"), (
        "viewer.js differs from the build's output (edited by hand?): " + REBUILD)


def test_the_bundle_is_one_self_contained_module_with_three_pinned_and_licensed() -> None:
    bundle = (STATIC / "viewer.js").read_text(encoding="utf-8")
    # One module: no static or dynamic import of anything (no CDN, no second file).
    assert not re.search(r"(^|[;}\s])import\s*[\s{*(\"']", bundle), "the bundle imports code"
    assert "SPDX-License-Identifier: MIT" in bundle  # three's licence comment is kept
    package = json.loads((SOURCE / "package.json").read_text())
    lock = json.loads((SOURCE / "package-lock.json").read_text())
    pinned = package["dependencies"]["three"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned), "pin three to an exact version"
    assert lock["packages"]["node_modules/three"]["version"] == pinned == _manifest()["three"]
    assert lock["packages"]["node_modules/three"]["license"] == "MIT"
    licence = (STATIC / "LICENSE.three.txt").read_text()
    assert licence.startswith("The MIT License") and "three.js authors" in licence
