"""Licence normalisation, the licence policy and the vendored manifest (pdm_records/supply.py).

The distributions here are generated metadata folders, so every case states its own evidence.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

import pytest

from pdm_records import supply
from pdm_records.supply import Component, Licence, LicenceCategory

MIT_TEXT = """MIT License

Copyright (c) 2024 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software")..."""
BSD3_TEXT = """Copyright (c) 2020, Someone
Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met: ...
3. Neither the name of the copyright holder nor the names of its contributors may be used..."""
BSD2_TEXT = """Copyright (c) 2020, Someone
Redistribution and use in source and binary forms, with or without modification, are permitted
provided that the following conditions are met: 1. ... 2. ..."""
BUNDLED_TEXT = BSD3_TEXT + """

----

This binary distribution of Thing also bundles the following software:

Name: OpenBLAS
Files: thing.libs/libopenblas*.so
Description: bundled as a dynamically linked library
License: BSD-3-Clause

Name: GCC runtime library
Files: thing.libs/libgfortran*.so
License: GPL-3.0-or-later WITH GCC-exception-3.1
"""


def make_dist(tmp_path: Path, name: str, headers: list[tuple[str, str]],
              files: dict[str, str] | None = None, body: str = "") -> metadata.Distribution:
    info = tmp_path / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.4", f"Name: {name}", "Version: 1.0"]
    lines += [f"{k}: {v}" for k, v in headers]
    (info / "METADATA").write_text("\n".join(lines) + "\n\n" + body)
    for rel, text in (files or {}).items():
        path = info / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    record = [f"{info.name}/{rel},," for rel in [*(files or {}), "METADATA"]]
    (info / "RECORD").write_text("\n".join(record) + "\n")
    return metadata.PathDistribution(info)


@pytest.mark.parametrize(("headers", "expected", "source", "declared"), [
    ([("License-Expression", "mit OR Apache-2.0")], "MIT OR Apache-2.0", "License-Expression",
     True),
    ([("License", "BSD-2-Clause")], "BSD-2-Clause", "License", True),
    ([("License", "Apache License, Version 2.0")], "Apache-2.0", "License", False),
    ([("License", "PSFL")], "PSF-2.0", "License", False),
    ([("Classifier", "License :: OSI Approved :: MIT License")], "MIT", "classifier", False),
    ([("License", "UNKNOWN"), ("Classifier", "License :: OSI Approved :: ISC License (ISCL)")],
     "ISC", "classifier", False),
    # "Apache Software License" names no version: without a licence text it stays unknown.
    ([("Classifier", "License :: OSI Approved :: Apache Software License")],
     None, "none", False),
    ([("Classifier",
       "License :: OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)")],
     "LGPL-3.0-only", "classifier", False),
    # The License-Expression wins over a contradicting classifier.
    ([("License-Expression", "MIT"),
      ("Classifier", "License :: OSI Approved :: Apache Software License")],
     "MIT", "License-Expression", True),
])
def test_licence_from_metadata_fields(tmp_path: Path, headers: list[tuple[str, str]],
                                      expected: str | None, source: str,
                                      declared: bool) -> None:
    licence = supply.licence_of(make_dist(tmp_path, "thing", headers))
    assert (licence.expression, licence.source, licence.declared) == (expected, source, declared)


def test_several_classifiers_all_apply(tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "both", [
        ("Classifier", "License :: OSI Approved :: MIT License"),
        ("Classifier", "License :: OSI Approved :: Apache Software License")],
        {"LICENSE": "Apache License\nVersion 2.0, January 2004\n..."})
    assert supply.licence_of(dist) == Licence("Apache-2.0 AND MIT", None, "classifier", False)


def test_generic_bsd_is_resolved_by_the_licence_file(tmp_path: Path) -> None:
    three = make_dist(tmp_path / "a", "three", [("License", "BSD"), ("License-File", "LICENSE")],
                      {"licenses/LICENSE": BSD3_TEXT})
    two = make_dist(tmp_path / "b", "two",
                    [("Classifier", "License :: OSI Approved :: BSD License")],
                    {"LICENSE.txt": BSD2_TEXT})
    assert supply.licence_of(three).expression == "BSD-3-Clause"
    assert supply.licence_of(two).expression == "BSD-2-Clause"


def test_whole_licence_text_in_the_license_field(tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "texty", [], body="")
    (Path(str(dist._path)) / "METADATA").write_text(  # type: ignore[attr-defined]
        "Metadata-Version: 2.1\nName: texty\nVersion: 1.0\nLicense: "
        + MIT_TEXT.replace("\n", "\n        ") + "\n\n")
    licence = supply.licence_of(metadata.PathDistribution(dist._path))  # type: ignore[attr-defined]
    assert licence.expression == "MIT"
    assert licence.source == "licence text"


def test_no_licence_evidence_is_unknown(tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "mystery", [("License", "Some custom terms")])
    licence = supply.licence_of(dist)
    assert licence.expression is None
    assert licence.name == "Some custom terms"
    assert supply.category_of(licence) is LicenceCategory.UNKNOWN
    bare = make_dist(tmp_path / "x", "bare", [])
    assert supply.licence_of(bare) == Licence(None, None, "none", False)


def test_gpl_text_is_never_guessed_permissive(tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "gpl", [("License-File", "COPYING")], {
        "licenses/COPYING": "GNU GENERAL PUBLIC LICENSE Version 3 ... " + MIT_TEXT})
    assert supply.category_of(supply.licence_of(dist)) is LicenceCategory.UNKNOWN


def test_bundled_libraries_are_read_from_the_wheel_licence(tmp_path: Path) -> None:
    dist = make_dist(tmp_path, "thing", [("License-File", "LICENSE.txt")],
                     {"licenses/LICENSE.txt": BUNDLED_TEXT})
    assert supply.bundled_libraries(dist) == [
        ("GCC runtime library", "GPL-3.0-or-later WITH GCC-exception-3.1"),
        ("OpenBLAS", "BSD-3-Clause"),
    ]
    # The appendix does not change the wheel's own licence.
    assert supply.licence_of(dist).expression == "BSD-3-Clause"


@pytest.mark.parametrize(("expression", "category"), [
    ("MIT", LicenceCategory.PERMISSIVE),
    ("Apache-2.0 AND PSF-2.0", LicenceCategory.PERMISSIVE),
    ("LGPL-3.0-only", LicenceCategory.WEAK_COPYLEFT),
    ("MPL-2.0", LicenceCategory.WEAK_COPYLEFT),
    ("GPL-2.0-or-later", LicenceCategory.STRONG_COPYLEFT),
    ("AGPL-3.0-only", LicenceCategory.STRONG_COPYLEFT),
    ("GPL-3.0-or-later WITH GCC-exception-3.1", LicenceCategory.STRONG_COPYLEFT),
    ("MIT AND GPL-3.0-only", LicenceCategory.STRONG_COPYLEFT),  # AND: the worst part
    ("GPL-3.0-only OR MIT", LicenceCategory.PERMISSIVE),  # OR: we may choose MIT
    ("LGPL-2.1-or-later OR GPL-2.0-only", LicenceCategory.WEAK_COPYLEFT),
    ("Elastic-2.0", LicenceCategory.UNKNOWN),
])
def test_policy_categories(expression: str, category: LicenceCategory) -> None:
    assert supply.category_of(Licence(expression, None, "test", True)) is category


def _component(name: str, expression: str | None, parent: str | None = None) -> Component:
    return Component(name=name, version="1.0", kind="bundled" if parent else "python",
                     licence=Licence(expression, None, "test", True), runtime=True,
                     parent=parent)


def _entry(component: str, licence: str) -> supply.AllowlistEntry:
    return supply.AllowlistEntry(component, licence, "reviewed: used unmodified as a library",
                                 "2026-12-03")


def test_check_fails_on_copyleft_and_unknown_without_a_review() -> None:
    components = [_component("ok", "MIT"), _component("gpl", "GPL-3.0-only"),
                  _component("lgpl", "LGPL-3.0-only"), _component("nobody-knows", None)]
    report = supply.check_licences(components, [])
    assert sorted(f.component.name for f in report.failures) == ["gpl", "lgpl", "nobody-knows"]
    assert report.count(LicenceCategory.STRONG_COPYLEFT) == 1
    assert report.count(LicenceCategory.UNKNOWN) == 1


def test_a_reviewed_exception_must_match_component_and_exact_licence() -> None:
    components = [_component("gpl", "GPL-3.0-only"),
                  _component("GCC runtime library", "GPL-3.0-or-later WITH GCC-exception-3.1",
                             parent="numpy")]
    report = supply.check_licences(components, [
        _entry("gpl", "GPL-2.0-only"),  # another licence: a relicensing voids the review
        _entry("numpy > GCC runtime library", "GPL-3.0-or-later WITH GCC-exception-3.1"),
        _entry("gone", "MIT"),
    ])
    assert [f.component.name for f in report.failures] == ["gpl"]
    assert sorted(e.component for e in report.unused_exceptions) == ["gone", "gpl"]


def test_allowlist_entries_need_a_real_justification(tmp_path: Path) -> None:
    path = tmp_path / "allow.toml"
    path.write_text('[[exception]]\ncomponent = "x"\nlicence = "GPL-3.0-only"\n'
                    'justification = "fine"\nreviewed = "2026-12-03"\n')
    with pytest.raises(ValueError, match="too short"):
        supply.load_allowlist(path)
    path.write_text('[[exception]]\ncomponent = "x"\nlicence = "GPL-3.0-only"\n')
    with pytest.raises(ValueError, match="justification"):
        supply.load_allowlist(path)


def test_the_shipped_allowlist_loads_and_every_entry_is_reviewed() -> None:
    entries = supply.load_allowlist()
    assert entries, "the shipped allowlist is empty"
    for entry in entries:
        assert supply.category_of(Licence(entry.licence, None, "x", True)) is not \
            LicenceCategory.PERMISSIVE, f"{entry.component}: a permissive licence needs no entry"


def test_vendored_manifest_hashes_every_file(tmp_path: Path) -> None:
    (tmp_path / "vendor" / "lib").mkdir(parents=True)
    (tmp_path / "vendor" / "lib" / "lib.js").write_bytes(b"console.log(1)")
    manifest = tmp_path / "VENDORED.json"
    manifest.write_text(json.dumps({"components": [{
        "name": "lib", "version": "1.2.3", "licence": "MIT", "purl": "pkg:npm/lib@1.2.3",
        "files": ["vendor/lib/lib.js"]}]}))
    [component] = supply.vendored_components(manifest)
    assert component.sha256 == {"vendor/lib/lib.js": hashlib.sha256(b"console.log(1)").hexdigest()}
    assert component.licence.expression == "MIT"
    assert component.bom_ref == "pkg:npm/lib@1.2.3"


@pytest.mark.parametrize("files", [["vendor/missing.js"], ["../../etc/passwd"]])
def test_vendored_manifest_refuses_missing_or_outside_files(tmp_path: Path,
                                                            files: list[str]) -> None:
    manifest = tmp_path / "VENDORED.json"
    manifest.write_text(json.dumps({"components": [{
        "name": "lib", "version": "1", "licence": "MIT", "files": files}]}))
    with pytest.raises(supply.ManifestError, match="missing"):
        supply.vendored_components(manifest)


def test_every_vendored_folder_is_declared_in_the_manifest() -> None:
    # A library copied into static/vendor/ without a manifest entry would be missing from the
    # SBOM and escape the licence check.
    declared = {Path(f).parts[1] for c in supply.vendored_components() for f in c.files
                if Path(f).parts[0] == "vendor"}
    present = {p.name for p in (supply.STATIC_DIR / "vendor").iterdir() if p.is_dir()}
    assert present <= declared, f"declare in VENDORED.json: {sorted(present - declared)}"


def test_runtime_closure_follows_requirements_and_extras(tmp_path: Path) -> None:
    dists = {
        "root": make_dist(tmp_path / "1", "root", [
            ("Requires-Dist", "lib[fast]>=1"), ("Provides-Extra", "dev"),
            ("Requires-Dist", 'devtool; extra == "dev"')]),
        "lib": make_dist(tmp_path / "2", "lib", [
            ("Provides-Extra", "fast"), ("Requires-Dist", 'speedup; extra == "fast"'),
            ("Requires-Dist", 'winonly; sys_platform == "win32"')]),
        "speedup": make_dist(tmp_path / "3", "speedup", []),
        "devtool": make_dist(tmp_path / "4", "devtool", []),
        "winonly": make_dist(tmp_path / "5", "winonly", []),
    }
    assert supply.runtime_closure(dists, "root") == {"lib", "speedup"}
