"""Offline verifier of a pdm-records audit package (a ZIP made by ``pdm export-case``).

Needs only Python (3.10 or later) and the ``cryptography`` package; no other part of
pdm-records. The export copies this very file into every package as ``verify_package.py``::

    python verify_package.py PACKAGE.zip [--public-key KEY]
    python -m pdm_records.verify_package PACKAGE.zip [--public-key KEY]

``KEY`` is the installation's Ed25519 public key: a PEM file, or the key as base64 or hex (as
``pdm doctor`` and the application show it). Without it, the key embedded in the package is
used, which only proves the package is internally consistent: someone who altered it could
have re-signed it with a key of their own. Pin the key.

Checks (21 CFR Part 11 §11.10(a) "discern invalid or altered records", §11.70 linking):

1. every file's SHA-256 and size against ``manifest.json``, and no file the manifest omits;
2. the Ed25519 signature ``manifest.sig`` over the exact bytes of ``manifest.json``;
3. each signature's signed record: its content hashes to the signed content hash, its
   manifestation to the binding hash, and the files and records it names are in the package
   with those hashes;
4. the audit chain slice: every full event re-hashed from its content, every ``prev_hash`` link
   (across the ``(seq, hash)`` stubs of other cases' events), seq contiguous, and the
   checkpoint(s) from write-once storage match the chain at their seq.

Exit status: 0 VALID, 1 INVALID (every problem is listed, the first is named in the verdict),
2 the package cannot be read. The canonical JSON (RFC 8785) and the event hash below are kept
identical to ``pdm_records.canonical`` and ``pdm_records.audit_chain`` (a test compares them).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import sys
import zipfile
from collections.abc import Iterator
from typing import IO, Any

FORMAT = "pdm-records audit package"
FORMAT_VERSION = 1
GENESIS_HASH = "0" * 64
MANIFEST = "manifest.json"
MANIFEST_SIG = "manifest.sig"
EVENTS = "audit/events.jsonl"
CONTENT_FIELDS = ("seq", "prev_hash", "occurred_at", "actor_id", "actor_label", "action",
                  "target_type", "target_id", "case_id", "before", "after", "remote_addr")
CHUNK = 1 << 20


# -- RFC 8785 canonical JSON (the same output as the rfc8785 package) -------------------------
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
            "\t": "\\t"}


def _string(value: str) -> str:
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _number(value: float) -> str:
    """ECMAScript Number.prototype.toString (RFC 8785 §3.2.2.3)."""
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{value} is not representable in canonical JSON")
    if value == 0:
        return "0"
    if value < 0:
        return "-" + _number(-value)
    digits, _, exponent_text = repr(value).partition("e")
    exponent = int(exponent_text) if exponent_text else 0
    whole, _, fraction = digits.partition(".")
    if fraction == "0":
        fraction = ""
    # Normalise to digit string d1d2…dk and decimal exponent n (value = 0.d1…dk × 10^n).
    significant = (whole + fraction).lstrip("0")
    n = len(whole.lstrip("0")) + exponent if whole.strip("0") else (
        exponent - (len(fraction) - len(fraction.lstrip("0"))))
    significant = significant.rstrip("0") or "0"
    k = len(significant)
    if k <= n <= 21:
        return significant + "0" * (n - k)
    if 0 < n <= 21:
        return significant[:n] + "." + significant[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + significant
    mantissa = significant[0] + ("." + significant[1:] if k > 1 else "")
    return f"{mantissa}e{'+' if n - 1 > 0 else '-'}{abs(n - 1)}"


def _dump(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if abs(value) > 2**53 - 1:
            # Only a float can have produced it (JSON reads 6e16 written as digits back as
            # an int): serialise it as that float, as the hash was computed.
            if _number(float(value)) != str(value):
                raise ValueError(f"{value} exceeds the safe integer range of canonical JSON")
            out.append(str(value))
        else:
            out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        value.encode("utf-8")  # rejects lone surrogates, as rfc8785 does
        out.append(_string(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _dump(item, out)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise ValueError("canonical JSON object keys must be strings")
        out.append("{")
        for index, key in enumerate(sorted(value, key=lambda k: k.encode("utf-16be"))):
            if index:
                out.append(",")
            out.append(_string(key))
            out.append(":")
            _dump(value[key], out)
        out.append("}")
    else:
        raise ValueError(f"unsupported type in canonical JSON: {type(value).__name__}")


def canonical_json(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 encoding of a JSON value."""
    out: list[str] = []
    _dump(value, out)
    return "".join(out).encode("utf-8")


def canonical_sha256(value: Any) -> str:
    return hashlib.sha256(canonical_json(value)).hexdigest()


def event_hash(event: dict[str, Any]) -> str:
    """The hash of an audit event: SHA-256 of the canonical JSON of its content fields."""
    return canonical_sha256({name: event.get(name) for name in CONTENT_FIELDS})


# -- the key --------------------------------------------------------------------------------
def load_public_key(text: bytes) -> Any:
    """An Ed25519 public key from PEM, or from the raw 32 bytes as base64 or hex."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    stripped = text.strip()
    if stripped.startswith(b"-----BEGIN"):
        key = load_pem_public_key(stripped)
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM key is not an Ed25519 public key")
        return key
    value = stripped.decode("ascii", "replace").removeprefix("ed25519:")
    raw: bytes | None = None
    if len(value) == 64:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the key is neither PEM, base64 nor hex") from None
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key has 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def raw_public_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return bytes(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def key_fingerprint(key: Any) -> str:
    """``SHA256:<hex>`` of the raw public key (as shown by ``pdm doctor``)."""
    return "SHA256:" + hashlib.sha256(raw_public_key(key)).hexdigest()


# -- verification ---------------------------------------------------------------------------
class Unreadable(Exception):
    """The package is not a readable ZIP or has no readable manifest (exit 2)."""


class Result:
    def __init__(self) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []

    @property
    def valid(self) -> bool:
        return not self.problems

    def verdict(self) -> str:
        return "VALID" if self.valid else f"INVALID: {self.problems[0]}"


def _file_sha256(archive: zipfile.ZipFile, name: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with archive.open(name) as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _json(archive: zipfile.ZipFile, name: str) -> Any:
    with archive.open(name) as handle:
        return json.loads(handle.read().decode("utf-8"))


def _lines(archive: zipfile.ZipFile, name: str) -> Iterator[Any]:
    with archive.open(name) as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line.decode("utf-8"))
                except ValueError as exc:
                    raise ValueError(f"{name} line {number} is not JSON: {exc}") from None


def verify(path: str | IO[bytes], public_key: bytes | None = None) -> Result:
    """Verify the package at ``path`` (a file name or a binary file object); raise
    :class:`Unreadable` when it cannot be read."""
    result = Result()
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise Unreadable(f"{path} is not a readable ZIP file: {exc}") from exc
    with archive:
        names = [info.filename for info in archive.infolist() if not info.is_dir()]
        if MANIFEST not in names:
            raise Unreadable("the package has no manifest.json")
        try:
            manifest_bytes = archive.read(MANIFEST)
            manifest = json.loads(manifest_bytes.decode("utf-8"))
        except (ValueError, zipfile.BadZipFile, OSError) as exc:
            raise Unreadable(f"manifest.json cannot be read: {exc}") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), list):
            raise Unreadable("manifest.json is not a package manifest")
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            result.problems.append(
                f"unknown package format {manifest.get('format')!r} version "
                f"{manifest.get('format_version')!r} (this verifier reads version "
                f"{FORMAT_VERSION})")
        _check_signature(archive, names, manifest_bytes, manifest, public_key, result)
        listed = _check_files(archive, names, manifest, result)
        _check_signatures(archive, listed, result)
        _check_chain(archive, listed, manifest, result)
    return result


def _check_signature(archive: zipfile.ZipFile, names: list[str], manifest_bytes: bytes,
                     manifest: dict[str, Any], pinned: bytes | None, result: Result) -> None:
    from cryptography.exceptions import InvalidSignature

    embedded_name = manifest.get("public_key_file")
    try:
        if pinned is not None:
            key = load_public_key(pinned)
            result.notes.append(f"public key pinned: {key_fingerprint(key)}")
        else:
            if not isinstance(embedded_name, str) or embedded_name not in names:
                result.problems.append("the package has no public key and none was given")
                return
            key = load_public_key(archive.read(embedded_name))
            result.warnings.append(
                f"only the public key embedded in the package was used ({key_fingerprint(key)}): "
                "anyone who altered the package could have re-signed it with a key of their own. "
                "Compare this fingerprint with the one 'pdm doctor' shows, or pass --public-key.")
    except ValueError as exc:
        result.problems.append(f"the public key cannot be read: {exc}")
        return
    if manifest.get("public_key_fingerprint") != key_fingerprint(key):
        result.problems.append(
            f"the manifest names key {manifest.get('public_key_fingerprint')}, the key used is "
            f"{key_fingerprint(key)}")
    if MANIFEST_SIG not in names:
        result.problems.append("manifest.sig (the package signature) is missing")
        return
    try:
        signature = base64.b64decode(archive.read(MANIFEST_SIG).strip(), validate=True)
        key.verify(signature, manifest_bytes)
    except (InvalidSignature, binascii.Error, ValueError):
        result.problems.append("the manifest signature (manifest.sig) does not verify with "
                               f"key {key_fingerprint(key)}: the manifest was changed or signed "
                               "by another key")


def _check_files(archive: zipfile.ZipFile, names: list[str], manifest: dict[str, Any],
                 result: Result) -> dict[str, str]:
    """Every listed file's hash and size; unlisted and duplicate files. Returns path → sha256
    of the files that matched."""
    listed: dict[str, str] = {}
    seen: set[str] = set()
    for name in names:
        if name in seen:
            result.problems.append(f"{name} appears twice in the ZIP")
        seen.add(name)
    for entry in manifest["files"]:
        path, sha, size = entry.get("path"), entry.get("sha256"), entry.get("size")
        if path not in seen:
            result.problems.append(f"{path} is listed in the manifest but missing")
            continue
        actual, actual_size = _file_sha256(archive, path)
        if actual != sha or actual_size != size:
            result.problems.append(f"{path} was altered: SHA-256 {actual} ({actual_size} bytes), "
                                   f"the manifest says {sha} ({size} bytes)")
            continue
        listed[path] = actual
    for name in sorted(seen - {e.get("path") for e in manifest["files"]}
                       - {MANIFEST, MANIFEST_SIG}):
        result.problems.append(f"{name} is in the ZIP but not in the manifest (added)")
    return listed


def _check_signatures(archive: zipfile.ZipFile, listed: dict[str, str], result: Result) -> None:
    """Each signed record: content hash, binding hash, and what it names is in the package."""
    file_hashes = set(listed.values())
    for path in sorted(p for p in listed if "/signatures/" in p and p.endswith(".json")):
        try:
            document = _json(archive, path)
            record, manifestation = document["record"], document["signature"]
            binding = document["binding_sha256"]
        except (ValueError, KeyError, TypeError):
            result.problems.append(f"{path} is not a signed record")
            continue
        if canonical_sha256(record) != manifestation.get("content_sha256"):
            result.problems.append(f"{path}: the signed content does not hash to the signed "
                                   "content hash (the record was altered)")
            continue
        if canonical_sha256(manifestation) != binding:
            result.problems.append(f"{path}: the manifestation (signer, time, meaning, target) "
                                   "does not match its binding hash")
            continue
        index_path = path.rsplit("/signatures/", 1)[0] + "/signatures.json"
        if index_path in listed:
            index = {s.get("binding_sha256"): s for s in _json(archive, index_path)}
            row = index.get(binding)
            if row is None or row.get("file") != path.rsplit("/", 1)[1]:
                result.problems.append(f"{path}: its binding {binding[:16]}… is not the one the "
                                       "case's signature list names for this file (swapped?)")
                continue
            if (row.get("target_type"), row.get("target_id")) != (
                    manifestation.get("target_type"), manifestation.get("target_id")):
                result.problems.append(f"{path}: signs {manifestation.get('target_type')} "
                                       f"{manifestation.get('target_id')}, the case lists it for "
                                       f"{row.get('target_type')} {row.get('target_id')}")
                continue
        named = [a.get("sha256") for a in record.get("attachments", [])]
        iteration = record.get("design_iteration") or {}
        named.append(iteration.get("sha256"))
        report = record.get("verification_report") or {}
        for sha in [s for s in named if s]:
            if sha not in file_hashes:
                result.problems.append(f"{path}: the signed record names a file with SHA-256 "
                                       f"{sha}, which the package does not contain")
        if report.get("report_sha256"):
            ok = any(_report_matches(archive, p, report) for p in listed
                     if "/reports/" in p and p.endswith(".json"))
            if not ok:
                result.problems.append(f"{path}: the signed verification report "
                                       f"{report.get('id')} ({report['report_sha256'][:16]}…) is "
                                       "not in the package with that hash")


def _report_matches(archive: zipfile.ZipFile, path: str, signed: dict[str, Any]) -> bool:
    try:
        document = _json(archive, path)
    except ValueError:
        return False
    if not isinstance(document, dict) or "report" not in document:
        return False
    return bool(document.get("id") == signed.get("id")
                and canonical_sha256(document["report"]) == signed.get("report_sha256"))


def _check_chain(archive: zipfile.ZipFile, listed: dict[str, str], manifest: dict[str, Any],
                 result: Result) -> None:
    if EVENTS not in listed:
        if EVENTS not in {e.get("path") for e in manifest["files"]}:
            result.problems.append(f"{EVENTS} (the audit trail slice) is missing")
        return  # an altered events file is reported already
    checkpoints: dict[int, list[tuple[str, str]]] = {}
    for path in sorted(p for p in listed if p.startswith("audit/checkpoints/")):
        try:
            document = _json(archive, path)
            if document.get("type") != "pdm-records audit checkpoint":
                raise ValueError
            checkpoints.setdefault(int(document["seq"]), []).append((str(document["hash"]), path))
        except (ValueError, KeyError, TypeError):
            result.problems.append(f"{path} is not an audit checkpoint")
    if not checkpoints:
        result.problems.append("the package has no audit checkpoint: the chain slice is not "
                               "pinned to write-once storage")
    cases = set(manifest.get("case_ids") or [])
    expected_seq: int | None = None
    prev: str | None = None
    full = stubs = 0
    try:
        for event in _lines(archive, EVENTS):
            seq = int(event["seq"])
            stored = event["hash"]
            if expected_seq is not None and seq != expected_seq:
                what = "missing" if seq > expected_seq else "duplicated or out of order"
                result.problems.append(f"audit chain: event {expected_seq} is {what} "
                                       f"(next in the package: {seq})")
                return
            is_stub = "prev_hash" not in event
            if is_stub:
                stubs += 1
                if set(event) - {"seq", "hash"}:
                    result.problems.append(f"audit chain: stub {seq} carries content")
            else:
                full += 1
                if prev is not None and event["prev_hash"] != prev:
                    result.problems.append(
                        f"audit chain: event {seq}'s prev_hash is not the hash of event "
                        f"{seq - 1}: an event before it was removed, inserted or altered")
                    return
                actual = event_hash(event)
                if actual != stored:
                    result.problems.append(f"audit chain: event {seq} was edited (its content "
                                           f"hashes to {actual}, the chain says {stored})")
                    return
                if cases and event.get("case_id") not in cases:
                    result.problems.append(f"audit chain: event {seq} belongs to no exported "
                                           "case but is given in full")
            for point_hash, path in checkpoints.pop(seq, []):
                if point_hash != stored:
                    result.problems.append(f"audit chain: checkpoint {path} pins event {seq} "
                                           f"as {point_hash}, the package has {stored}")
                    return
            prev, expected_seq = stored, seq + 1
    except (ValueError, KeyError, TypeError) as exc:
        result.problems.append(f"audit chain: {EVENTS} cannot be read: {exc}")
        return
    if full == 0:
        result.problems.append("audit chain: the package contains no event of the case")
    for seq in sorted(checkpoints):
        result.problems.append(f"audit chain: checkpoint at event {seq} is beyond the end of "
                               f"the slice (event {(expected_seq or 1) - 1}): events were removed")
    if not result.problems:
        result.notes.append(f"audit chain: {full} event(s) of the case re-hashed, {stubs} other "
                            f"event(s) linked as (seq, hash) stubs, up to event "
                            f"{(expected_seq or 1) - 1}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Verify a pdm-records audit package offline (exit 0 valid, 1 invalid, "
                    "2 unreadable).")
    parser.add_argument("package", help="the audit package (.zip)")
    parser.add_argument("--public-key", metavar="KEY",
                        help="the installation's Ed25519 public key: a PEM file, or the key as "
                             "base64 or hex (pins the key; strongly recommended)")
    args = parser.parse_args(argv)
    pinned: bytes | None = None
    if args.public_key:
        try:
            with open(args.public_key, "rb") as handle:
                pinned = handle.read()
        except OSError:
            pinned = args.public_key.encode("ascii", "replace")
    try:
        result = verify(args.package, pinned)
    except Unreadable as exc:
        print(f"UNREADABLE: {exc}")
        return 2
    for note in result.notes:
        print(f"note: {note}")
    for warning in result.warnings:
        print(f"WARNING: {warning}")
    for problem in result.problems:
        print(f"problem: {problem}")
    print(result.verdict())
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
