"""Supply chain: what the running installation is made of, under which licences.

IMDRF N60 and the FDA premarket cybersecurity guidance expect a Software Bill of Materials that
lists every component (DOMAIN.md §8). This module is pure (no Flask, no database):

- :func:`inventory` lists the installed Python distributions of the running environment (the set
  pinned by ``requirements.lock``), the native libraries their wheels declare as bundled, and the
  front-end files vendored under ``pdm_records/web/static`` (declared in ``VENDORED.json``);
- :func:`licence_of` reads a distribution's licence from its metadata (``License-Expression``,
  ``License``, classifiers, then its licence files) and normalises it to an SPDX expression;
- :func:`build_sbom` turns the inventory into a CycloneDX 1.6 document;
- :func:`check_licences` applies the licence policy (docs/security/supply-chain.md) with the
  reviewed exceptions of ``licence-allowlist.toml``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

ROOT_DISTRIBUTION = "pdm-records"
PACKAGE_DIR = Path(__file__).resolve().parent
STATIC_DIR = PACKAGE_DIR / "web" / "static"
VENDORED_MANIFEST = STATIC_DIR / "VENDORED.json"
DEFAULT_ALLOWLIST = PACKAGE_DIR / "licence-allowlist.toml"
PROPERTY_PREFIX = "pdm-records"


class LicenceCategory(StrEnum):
    """How a licence constrains the Apache-2.0 product (best first)."""

    PERMISSIVE = "permissive"
    WEAK_COPYLEFT = "weak-copyleft"
    STRONG_COPYLEFT = "strong-copyleft"
    UNKNOWN = "unknown"


_RANK = list(LicenceCategory)

# SPDX ids by category. Anything not listed is UNKNOWN: a human reviews it.
PERMISSIVE_IDS = frozenset({
    "0BSD", "Apache-2.0", "BSD-1-Clause", "BSD-2-Clause", "BSD-3-Clause", "BSD-3-Clause-Open-MPI",
    "BSL-1.0", "CC0-1.0", "curl", "HPND", "ISC", "MIT", "MIT-0", "MIT-CMU", "NCSA", "OLDAP-2.8",
    "PostgreSQL", "PSF-2.0", "Python-2.0", "Unlicense", "X11", "Zlib",
})
_WEAK_PREFIXES = ("LGPL-", "MPL-", "EPL-", "CDDL-")
_STRONG_PREFIXES = ("GPL-", "AGPL-", "SSPL-", "EUPL-", "OSL-", "CC-BY-SA-")

# Free-text licence names (the ``License`` field and trove classifiers) → SPDX id. Keys are
# lower-case. "BSD" and "BSD License" say nothing about the clauses: the licence text decides.
_NAME_TO_SPDX = {
    "mit": "MIT", "mit license": "MIT", "the mit license (mit)": "MIT", "mit-0": "MIT-0",
    "apache 2.0": "Apache-2.0", "apache-2": "Apache-2.0", "apache license 2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0", "apache license version 2.0": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0", "asl 2.0": "Apache-2.0",
    "isc": "ISC", "isc license": "ISC", "isc license (iscl)": "ISC",
    "unlicense": "Unlicense", "the unlicense (unlicense)": "Unlicense",
    "psfl": "PSF-2.0", "psf": "PSF-2.0", "python software foundation license": "PSF-2.0",
    "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0", "mpl 2.0": "MPL-2.0", "mpl-2": "MPL-2.0",
    "zlib/libpng license": "Zlib", "boost software license 1.0 (bsl-1.0)": "BSL-1.0",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "gnu affero general public license v3 or later (agplv3+)": "AGPL-3.0-or-later",
}
_AMBIGUOUS_NAMES = {"bsd", "bsd license", "apache software license"}


@dataclass(frozen=True)
class Licence:
    """A component's licence: an SPDX expression when known, else the declared name (or None).

    ``source`` says where it was read (``License-Expression``, ``License``, ``classifier``,
    ``licence text``, ``manifest``); ``declared`` is True when the metadata stated the SPDX
    expression itself and False when it was concluded from names or texts.
    """

    expression: str | None
    name: str | None
    source: str
    declared: bool

    @property
    def label(self) -> str:
        return self.expression or self.name or "unknown"


@dataclass
class Component:
    """One entry of the inventory."""

    name: str
    version: str | None
    kind: str  # "python", "bundled" (a native library inside a wheel), "vendored" (static files)
    licence: Licence
    runtime: bool
    purl: str | None = None
    parent: str | None = None  # the distribution a bundled library ships in
    depends_on: list[str] = field(default_factory=list)  # canonical names (python only)
    files: list[str] = field(default_factory=list)
    sha256: dict[str, str] = field(default_factory=dict)  # vendored file → digest

    @property
    def display_name(self) -> str:
        return f"{self.parent} > {self.name}" if self.parent else self.name

    @property
    def bom_ref(self) -> str:
        if self.kind == "bundled":
            return f"pkg:pypi/{self.parent}#bundled/{_slug(self.name)}"
        if self.purl:
            return self.purl
        return f"{self.kind}/{_slug(self.name)}@{self.version or 'unknown'}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


# -- licences ------------------------------------------------------------------------------------

@functools.cache
def _spdx() -> Any:
    """The SPDX licence list, built once (building it takes a tenth of a second)."""
    from cyclonedx.spdx import get_spdx_licensing

    return get_spdx_licensing()


def normalise_expression(value: str) -> str | None:
    """The SPDX form of ``value`` when it is a valid SPDX licence expression, else None."""
    value = value.strip()
    if not value or "\n" in value or len(value) > 200:
        return None
    try:
        info = _spdx().validate(value)
    except Exception:  # license_expression fails on some free texts with assorted errors
        return None
    if info.errors or info.invalid_symbols:
        return None
    return str(info.normalized_expression)


def licence_from_text(text: str) -> str | None:
    """Recognise the common licence texts by their operative sentences.

    Only the distribution's own part counts: a wheel's appendix on bundled software (see
    :func:`bundled_libraries`) is cut off. Several recognised texts are joined with AND.
    """
    marker = _BUNDLED_MARKER.search(text)
    own = text[:marker.start()] if marker else text
    flat = " ".join(own.split()).lower()
    found: list[str] = []
    if "permission is hereby granted, free of charge" in flat:
        found.append("MIT")
    if "apache license" in flat and "version 2.0" in flat:
        found.append("Apache-2.0")
    if "redistribution and use in source and binary forms" in flat:
        three = any(s in flat for s in ("neither the name", "names of its contributors may",
                                        "name of the copyright holder nor"))
        found.append("BSD-3-Clause" if three else "BSD-2-Clause")
    if "mozilla public license version 2.0" in flat:
        found.append("MPL-2.0")
    if "permission to use, copy, modify, and/or distribute this software for any purpose" in flat:
        found.append("ISC")
    if "this is free and unencumbered software released into the public domain" in flat:
        found.append("Unlicense")
    if "python software foundation license" in flat:
        found.append("PSF-2.0")
    if "gnu lesser general public license" in flat or "gnu general public license" in flat:
        return None  # which version and whether "or later" needs a human: leave it unknown
    return " AND ".join(found) or None


def _field(dist: metadata.Distribution, name: str) -> str:
    """One metadata field ('' when absent); PackageMetadata is an email.Message underneath."""
    values = dist.metadata.get_all(name) or []
    return str(values[0]) if values else ""


def _licence_texts(dist: metadata.Distribution) -> list[str]:
    """The texts of the distribution's own licence files (not those of bundled sources)."""
    names = list(dist.metadata.get_all("License-File") or [])
    texts: list[str] = []
    for name in names:
        for candidate in (f"licenses/{name}", name):
            text = dist.read_text(candidate)
            if text:
                texts.append(text)
                break
    if not texts:
        for path in dist.files or []:
            parts = path.parts
            if len(parts) == 2 and parts[0].endswith((".dist-info", ".egg-info")) and \
                    re.match(r"(?i)(licen[cs]e|copying)", parts[1]):
                text = dist.read_text(parts[1])
                if text:
                    texts.append(text)
    return texts


def licence_of(dist: metadata.Distribution) -> Licence:
    """Normalise a distribution's declared licence to SPDX where the evidence allows."""
    meta = dist.metadata
    expression = _field(dist, "License-Expression").strip()
    if expression:
        normalised = normalise_expression(expression)
        if normalised:
            return Licence(normalised, None, "License-Expression", True)
        return Licence(None, expression, "License-Expression", True)

    texts = _licence_texts(dist)
    field_value = _field(dist, "License").strip()
    if field_value and field_value.upper() != "UNKNOWN":
        if "\n" in field_value or len(field_value) > 100:  # the whole licence text
            found = licence_from_text(field_value)
            if found:
                return Licence(found, None, "licence text", False)
        elif normalised := normalise_expression(field_value):
            return Licence(normalised, None, "License", True)
        elif field_value.lower() in _NAME_TO_SPDX:
            return Licence(_NAME_TO_SPDX[field_value.lower()], None, "License", False)
        elif field_value.lower() in _AMBIGUOUS_NAMES:
            found = next(filter(None, (licence_from_text(t) for t in texts)), None)
            if found:
                return Licence(found, None, "licence text", False)

    classifiers = [c.split(" :: ")[-1] for c in meta.get_all("Classifier") or []
                   if c.startswith("License :: ")]
    found_ids: list[str] = []
    for name in classifiers:
        key = name.lower()
        if key in _NAME_TO_SPDX:
            found_ids.append(_NAME_TO_SPDX[key])
        elif key in _AMBIGUOUS_NAMES:
            text_id = next(filter(None, (licence_from_text(t) for t in texts)), None)
            found_ids.append(text_id or name)
        else:
            found_ids.append(name)
    if found_ids and all(normalise_expression(i) for i in found_ids):
        # Several licence classifiers: every one applies (the conservative reading).
        unique = sorted({part for i in found_ids for part in i.split(" AND ")})
        return Licence(" AND ".join(unique), None, "classifier", False)

    for text in texts:
        found = licence_from_text(text)
        if found:
            return Licence(found, None, "licence text", False)
    name = field_value if field_value and "\n" not in field_value else None
    name = name or (", ".join(classifiers) if classifiers else None)
    return Licence(None, name if name and name.upper() != "UNKNOWN" else None, "none", False)


def category_of(licence: Licence) -> LicenceCategory:
    """The policy category: OR takes the best alternative, AND and WITH the worst part."""
    if licence.expression is None:
        return _category_of_name(licence.name) if licence.name else LicenceCategory.UNKNOWN
    return _category_of_node(_spdx().parse(licence.expression))


def _category_of_id(spdx_id: str) -> LicenceCategory:
    if spdx_id in PERMISSIVE_IDS:
        return LicenceCategory.PERMISSIVE
    if spdx_id.startswith(_STRONG_PREFIXES):
        return LicenceCategory.STRONG_COPYLEFT
    if spdx_id.startswith(_WEAK_PREFIXES):
        return LicenceCategory.WEAK_COPYLEFT
    return LicenceCategory.UNKNOWN


def _category_of_name(name: str) -> LicenceCategory:
    lower = name.lower()
    if "lesser" in lower or "library" in lower or "lgpl" in lower or "mozilla" in lower:
        return LicenceCategory.WEAK_COPYLEFT
    if "general public" in lower or "gpl" in lower:
        return LicenceCategory.STRONG_COPYLEFT
    return LicenceCategory.UNKNOWN


def _category_of_node(node: Any) -> LicenceCategory:
    from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol

    if isinstance(node, LicenseWithExceptionSymbol):
        return _category_of_id(str(node.license_symbol.key))
    if isinstance(node, LicenseSymbol):
        return _category_of_id(str(node.key))
    parts = [_category_of_node(arg) for arg in node.args]
    if isinstance(node, OR):
        return min(parts, key=_RANK.index)
    if isinstance(node, AND):
        return max(parts, key=_RANK.index)
    return LicenceCategory.UNKNOWN


# -- inventory -----------------------------------------------------------------------------------

def _distributions() -> dict[str, metadata.Distribution]:
    """Installed distributions by canonical name (the first one on sys.path wins, as for import)."""
    found: dict[str, metadata.Distribution] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found.setdefault(canonicalize_name(name), dist)
    return found


def _requirements(dist: metadata.Distribution, extras: Iterable[str]) -> Iterator[Requirement]:
    """The requirements of ``dist`` that apply here, with ``extras`` requested."""
    wanted = {""} | set(extras)
    for line in dist.requires or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in wanted):
            yield req


def runtime_closure(dists: dict[str, metadata.Distribution],
                    root: str = ROOT_DISTRIBUTION) -> set[str]:
    """Canonical names of the distributions the root needs at run time (no extras, no dev)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    queue: list[tuple[str, frozenset[str]]] = [(canonicalize_name(root), frozenset())]
    while queue:
        name, extras = queue.pop()
        if (name, extras) in seen or name not in dists:
            continue
        seen.add((name, extras))
        names.add(name)
        for req in _requirements(dists[name], extras):
            queue.append((canonicalize_name(req.name), frozenset(req.extras)))
    names.discard(canonicalize_name(root))
    return names


_BUNDLED_MARKER = re.compile(r"also bundles? the following software")
_BUNDLED_BLOCK = re.compile(
    r"^[ \t]*Name:[ \t]*(?P<name>.+?)[ \t]*$"
    r"(?:\n[ \t]*(?!License:)[A-Z][a-z]+:.*$)*"
    r"\n[ \t]*License:[ \t]*(?P<lic>.+?)[ \t]*$",
    re.MULTILINE)


def bundled_libraries(dist: metadata.Distribution) -> list[tuple[str, str]]:
    """``(name, licence)`` of the native libraries a wheel says it bundles.

    numpy and scipy wheels append "This binary distribution … also bundles the following
    software" with ``Name:``/``Files:``/``License:`` blocks to their licence text.
    """
    texts = [_field(dist, "License"), *_licence_texts(dist)]
    found: dict[str, str] = {}
    for text in texts:
        marker = _BUNDLED_MARKER.search(text)
        if marker is None:
            continue
        for match in _BUNDLED_BLOCK.finditer(text, marker.end()):
            found.setdefault(match.group("name"), match.group("lic"))
    return sorted(found.items())


def _purl(name: str, version: str | None) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="pypi", name=name, version=version).to_string())


def python_components() -> tuple[list[Component], metadata.Distribution | None]:
    """Every installed distribution except the root, plus the libraries their wheels bundle."""
    dists = _distributions()
    runtime = runtime_closure(dists)
    root = dists.get(canonicalize_name(ROOT_DISTRIBUTION))
    components: list[Component] = []
    for name in sorted(dists):
        if name == canonicalize_name(ROOT_DISTRIBUTION):
            continue
        dist = dists[name]
        version = dist.version
        deps = sorted({_canonical(r.name) for r in _requirements(dist, ())} & set(dists))
        component = Component(name=dist.metadata["Name"], version=version, kind="python",
                              licence=licence_of(dist), runtime=name in runtime,
                              purl=_purl(name, version), depends_on=deps)
        components.append(component)
        for lib_name, lib_licence in bundled_libraries(dist):
            expression = normalise_expression(lib_licence)
            components.append(Component(
                name=lib_name, version=None, kind="bundled",
                licence=Licence(expression, None if expression else lib_licence,
                                "licence text", True),
                runtime=component.runtime, parent=canonicalize_name(name)))
    return components, root


class ManifestError(ValueError):
    """VENDORED.json is malformed or names files that are missing."""


def vendored_components(manifest: Path = VENDORED_MANIFEST) -> list[Component]:
    """Front-end files copied into the repository, as declared in ``VENDORED.json``.

    Format: ``{"components": [{"name", "version", "licence" (SPDX), "purl", "files": [paths
    relative to the static folder]}]}``. Every listed file must exist; its SHA-256 goes into the
    SBOM. No manifest means nothing is vendored.
    """
    if not manifest.exists():
        return []
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        entries = data["components"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"{manifest}: not a vendored-components manifest ({exc})") from exc
    components: list[Component] = []
    for entry in entries:
        try:
            name, version, licence = entry["name"], entry["version"], entry["licence"]
            files = list(entry["files"])
        except (KeyError, TypeError) as exc:
            raise ManifestError(f"{manifest}: entry {entry!r} lacks {exc}") from exc
        digests: dict[str, str] = {}
        for rel in files:
            path = (manifest.parent / rel).resolve()
            if manifest.parent.resolve() not in path.parents or not path.is_file():
                raise ManifestError(f"{manifest}: {name}: file {rel!r} is missing")
            digests[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        expression = normalise_expression(str(licence))
        components.append(Component(
            name=name, version=str(version), kind="vendored",
            licence=Licence(expression, None if expression else str(licence), "manifest", True),
            runtime=True, purl=entry.get("purl"), files=files, sha256=digests))
    return components


def inventory(manifest: Path = VENDORED_MANIFEST) -> tuple[list[Component], str]:
    """All components of the running installation and the version of pdm-records itself."""
    from . import __version__

    components, root = python_components()
    components.extend(vendored_components(manifest))
    return components, root.version if root else __version__


# -- SBOM ----------------------------------------------------------------------------------------

def build_sbom(components: list[Component], root_version: str) -> Any:
    """A CycloneDX ``Bom`` of the components; the root is pdm-records itself (Apache-2.0)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component as CdxComponent
    from cyclonedx.model.component import ComponentScope, ComponentType
    from cyclonedx.model.license import DisjunctiveLicense
    from cyclonedx.model.tool import ToolRepository
    from packageurl import PackageURL

    root = CdxComponent(name=ROOT_DISTRIBUTION, version=root_version,
                        type=ComponentType.APPLICATION, bom_ref=ROOT_DISTRIBUTION,
                        licenses=[DisjunctiveLicense(id="Apache-2.0")],
                        description="Record keeper for personalized medical devices")
    tool = CdxComponent(name="pdm-records sbom", version=root_version,
                        type=ComponentType.APPLICATION, bom_ref="tool/pdm-records-sbom")
    bom = Bom(metadata=BomMetaData(component=root, tools=ToolRepository(components=[tool])))

    by_ref: dict[str, CdxComponent] = {}
    top_level: dict[str, CdxComponent] = {}
    for comp in components:
        properties = [
            Property(name=f"{PROPERTY_PREFIX}:kind", value=comp.kind),
            Property(name=f"{PROPERTY_PREFIX}:licence-source", value=comp.licence.source),
        ]
        properties += [Property(name=f"{PROPERTY_PREFIX}:file", value=f) for f in comp.files]
        cdx = CdxComponent(
            name=comp.name, version=comp.version, bom_ref=comp.bom_ref,
            type=ComponentType.LIBRARY,
            scope=ComponentScope.REQUIRED if comp.runtime else ComponentScope.EXCLUDED,
            purl=PackageURL.from_string(comp.purl) if comp.purl else None,
            licenses=_cdx_licences(comp.licence),
            hashes=[HashType(alg=HashAlgorithm.SHA_256, content=d) for d in comp.sha256.values()],
            properties=properties)
        by_ref[comp.bom_ref] = cdx
        if comp.kind == "bundled" and comp.parent is not None:
            parent = top_level.get(comp.parent)
            if parent is not None:
                parent.components.add(cdx)
                continue
        if comp.kind == "python":
            top_level[_canonical(comp.name)] = cdx
        bom.components.add(cdx)

    direct = [top_level[n] for n in _root_requirements() if n in top_level]
    direct += [by_ref[c.bom_ref] for c in components if c.kind == "vendored"]
    bom.register_dependency(root, direct)
    for comp in components:
        if comp.kind == "python":
            bom.register_dependency(by_ref[comp.bom_ref],
                                    [top_level[d] for d in comp.depends_on if d in top_level])
    return bom


def _canonical(name: str) -> str:
    return str(canonicalize_name(name))


def _root_requirements() -> list[str]:
    dists = _distributions()
    root = dists.get(canonicalize_name(ROOT_DISTRIBUTION))
    if root is None:
        return []
    return sorted({_canonical(r.name) for r in _requirements(root, ())})


def _cdx_licences(licence: Licence) -> list[Any]:
    from cyclonedx.model.license import (
        DisjunctiveLicense,
        LicenseAcknowledgement,
        LicenseExpression,
    )
    from cyclonedx.spdx import is_supported_id

    ack = LicenseAcknowledgement.DECLARED if licence.declared else \
        LicenseAcknowledgement.CONCLUDED
    if licence.expression and is_supported_id(licence.expression):
        return [DisjunctiveLicense(id=licence.expression, acknowledgement=ack)]
    if licence.expression:
        return [LicenseExpression(licence.expression, acknowledgement=ack)]
    if licence.name:
        return [DisjunctiveLicense(name=licence.name[:200], acknowledgement=ack)]
    return []


def sbom_json(components: list[Component], root_version: str) -> str:
    """The CycloneDX 1.6 JSON text of the inventory."""
    from cyclonedx.output import make_outputter
    from cyclonedx.schema import OutputFormat, SchemaVersion

    bom = build_sbom(components, root_version)
    outputter = make_outputter(bom, OutputFormat.JSON, SchemaVersion.V1_6)
    return str(outputter.output_as_string(indent=2))


# -- licence policy ------------------------------------------------------------------------------

@dataclass(frozen=True)
class AllowlistEntry:
    """A reviewed exception: this component under exactly this licence is accepted, because…"""

    component: str
    licence: str
    justification: str
    reviewed: str


def load_allowlist(path: Path = DEFAULT_ALLOWLIST) -> list[AllowlistEntry]:
    """Read the reviewed exceptions; every entry needs a component, licence and justification."""
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    entries: list[AllowlistEntry] = []
    for raw in data.get("exception", []):
        missing = [k for k in ("component", "licence", "justification", "reviewed")
                   if not str(raw.get(k, "")).strip()]
        if missing:
            raise ValueError(f"{path}: exception {raw.get('component')!r} lacks {missing}")
        if len(str(raw["justification"]).split()) < 8:
            raise ValueError(f"{path}: the justification of {raw['component']!r} is too short "
                             "to be a review")
        entries.append(AllowlistEntry(str(raw["component"]), str(raw["licence"]),
                                      str(raw["justification"]).strip(), str(raw["reviewed"])))
    return entries


@dataclass(frozen=True)
class LicenceFinding:
    component: Component
    category: LicenceCategory
    allowed_by: AllowlistEntry | None

    @property
    def ok(self) -> bool:
        return self.category is LicenceCategory.PERMISSIVE or self.allowed_by is not None


@dataclass(frozen=True)
class LicenceReport:
    findings: list[LicenceFinding]
    unused_exceptions: list[AllowlistEntry]

    @property
    def failures(self) -> list[LicenceFinding]:
        return [f for f in self.findings if not f.ok]

    def count(self, category: LicenceCategory) -> int:
        return sum(1 for f in self.findings if f.category is category)


def check_licences(components: list[Component], allowlist: list[AllowlistEntry]) -> LicenceReport:
    """Apply the policy: permissive passes; anything else passes only with a reviewed exception
    naming the component and its exact licence (a licence change voids the exception)."""
    exceptions = {(e.component.lower(), e.licence): e for e in allowlist}
    used: set[tuple[str, str]] = set()
    findings: list[LicenceFinding] = []
    for comp in components:
        category = category_of(comp.licence)
        entry = None
        if category is not LicenceCategory.PERMISSIVE:
            key = (comp.display_name.lower(), comp.licence.label)
            entry = exceptions.get(key)
            if entry is not None:
                used.add(key)
        findings.append(LicenceFinding(comp, category, entry))
    unused = [e for k, e in exceptions.items() if k not in used]
    return LicenceReport(findings, unused)
