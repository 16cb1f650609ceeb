"""Audit packages and the offline verifier (issue 6 points 7 and 8; DOMAIN.md §6: 21 CFR Part 11
§11.10(a) altered records discernible, §11.10(b) human-readable and electronic copies, §11.10(e)
the audit trail, §11.50/§11.70 signatures manifested and linked)."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from pdm_records import verify_package
from pdm_records.canonical import canonical_json
from pdm_records.extensions import db
from pdm_records.models import AuditEvent
from tests.conftest import PASSWORD, Accounts, csrf_token
from tests.functional.test_envelopes_verification import (
    HOLLOW_LIMITS,
    _case_in_design,
    _envelope,
    _hollow_box,
    verify,
)
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create


def _released_case(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    """A case created through the API: attachment, a passing verified iteration, signatures
    authored, verified, approved and released."""
    _envelope(app, accounts, catalogue["implant"], HOLLOW_LIMITS)
    case = _case_in_design(app, accounts, catalogue, _hollow_box())
    assert verify(app, case)["passed"] is True
    client = app.test_client()
    for target, who in [("verified", "engineer"), ("awaiting_approval", "engineer"),
                        ("approved", "clinician")]:
        response = client.post(f"/api/v1/cases/{case['id']}/transitions",
                               headers=bearer(case[who]),
                               json={"to": target, "password": PASSWORD})
        assert response.status_code == 200, response.get_json()
    released = client.post(f"/api/v1/cases/{case['id']}/transitions",
                           headers=bearer(accounts.token("quality")),
                           json={"to": "released", "password": PASSWORD,
                                 "totp_code": accounts.totp("quality")})
    assert released.status_code == 200, released.get_json()
    client.post(f"/api/v1/cases/{case['id']}/transitions", headers=bearer(case["engineer"]),
                json={"to": "delivered", "delivered_on": date.today().isoformat()})
    detail = client.get(f"/api/v1/cases/{case['id']}", headers=bearer(case["engineer"]))
    case["number"] = detail.get_json()["number"]
    return case


def _other_case(app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> dict[str, Any]:
    clinician = accounts.token("clinician")
    other = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED,
                                    "patient_code": "OTHERPAT-7731"})
    assert attach(app, clinician, other["id"], binary_stl(), "other-ct.stl").status_code == 201
    return other


def _export(app: Flask, case: dict[str, Any], out: Path) -> Path:
    ran = app.test_cli_runner().invoke(args=["pdm", "export-case", case["number"],
                                             "--output", str(out)])
    assert ran.exit_code == 0, ran.output
    assert "verify: python -m pdm_records.verify_package" in ran.output
    return out


def _public_key(app: Flask) -> str:
    from pdm_records.signing_key import load_or_create, public_info

    return public_info(load_or_create(app.config["PDM_SIGNING_KEY_PATH"])).base64


@pytest.fixture
def package(app: Flask, accounts: Accounts, catalogue: dict[str, int],
            tmp_path: Path) -> dict[str, Any]:
    case = _released_case(app, accounts, catalogue)
    other = _other_case(app, accounts, catalogue)
    # The other case's events come after the case's, so they sit inside the package's span.
    client = app.test_client()
    client.post(f"/api/v1/cases/{case['id']}/comments", headers=bearer(case["engineer"]),
                json={"body": "delivered with the instructions"})
    path = _export(app, case, tmp_path / "package.zip")
    return {"case": case, "other": other, "path": path, "key": _public_key(app)}


def _rewrite(source: Path, dest: Path, *, change: dict[str, bytes | None] | None = None,
             add: dict[str, bytes] | None = None, rehash: bool = False,
             resign: Ed25519PrivateKey | None = None) -> Path:
    """Copy a package, replacing (or, with None, removing) entries; optionally fix the
    manifest's hashes and re-sign it with another key (what a forger would do)."""
    change, add = change or {}, add or {}
    with zipfile.ZipFile(source) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    for name, data in change.items():
        if data is None:
            entries.pop(name)
        else:
            entries[name] = data
    entries.update(add)
    if rehash:
        manifest = json.loads(entries["manifest.json"])
        for entry in manifest["files"]:
            if entry["path"] in entries:
                data = entries[entry["path"]]
                entry["sha256"] = verify_package.hashlib.sha256(data).hexdigest()
                entry["size"] = len(data)
        entries["manifest.json"] = canonical_json(manifest)
    if resign is not None:
        from pdm_records.signing_key import public_info

        info = public_info(resign)
        manifest = json.loads(entries["manifest.json"])
        manifest["public_key_fingerprint"] = info.fingerprint
        manifest["public_key"] = info.base64
        pem = info.pem.encode()
        for entry in manifest["files"]:
            if entry["path"] == "installation-key.pem":
                entry["sha256"] = verify_package.hashlib.sha256(pem).hexdigest()
                entry["size"] = len(pem)
        entries["installation-key.pem"] = pem
        entries["manifest.json"] = canonical_json(manifest)
        entries["manifest.sig"] = base64.b64encode(resign.sign(entries["manifest.json"]))
    with zipfile.ZipFile(dest, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return dest


def _events(path: Path) -> list[dict[str, Any]]:
    with zipfile.ZipFile(path) as archive:
        return [json.loads(line) for line in archive.read("audit/events.jsonl").splitlines()]


def _with_events(path: Path, dest: Path, events: list[dict[str, Any]], **kw: Any) -> Path:
    body = b"".join(canonical_json(e) + b"\n" for e in events)
    return _rewrite(path, dest, change={"audit/events.jsonl": body}, **kw)


def test_an_exported_case_verifies_offline(app: Flask, package: dict[str, Any],
                                          tmp_path: Path) -> None:
    path, case = package["path"], package["case"]
    result = verify_package.verify(str(path), package["key"].encode())
    assert result.valid, result.problems
    assert not result.warnings  # the key was pinned
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
        number = case["number"]
        assert {"manifest.json", "manifest.sig", "verify_package.py", "report.html",
                "report.pdf", "installation-key.pem", "audit/events.jsonl",
                f"cases/{number}/case.json", f"cases/{number}/revisions/r1.json",
                f"cases/{number}/signatures.json", f"cases/{number}/iterations.json"} <= names
        assert manifest["cases"] == [number]
        assert manifest["format_version"] == 1 and manifest["created_at"].endswith("Z")
        assert {f["path"] for f in manifest["files"]} == names - {"manifest.json",
                                                                 "manifest.sig"}
        assert any(n.startswith(f"cases/{number}/files/r1/") and n.endswith("ct-model.stl")
                   for n in names)
        assert any(n.startswith(f"cases/{number}/iterations/1/") for n in names)
        assert any(n.startswith("envelopes/") and n.endswith("-v1.json") for n in names)
        assert any(n.startswith("audit/checkpoints/") for n in names)
        signatures = json.loads(archive.read(f"cases/{number}/signatures.json"))
        assert [s["meaning"] for s in signatures] == ["authored", "verified", "approved",
                                                      "released"]
        assert all(f"signatures/{s['file']}" in " ".join(names) for s in signatures)
        pdf = archive.read("report.pdf")
        assert pdf.startswith(b"%PDF-")
        from pdm_records.services.export_report import find_font

        if find_font() is not None:  # PDF/A-2B needs an embeddable Unicode font
            assert b"pdfaid:part" in pdf and b"/OutputIntents" in pdf
        else:
            assert b"pdfaid:part" not in pdf and b"/OutputIntents" not in pdf
        html = archive.read("report.html").decode()
        assert number in html and "case.exported" in html and "released" in html
        assert "Test Quality" in html  # the signer's printed name (§11.50)
        events = [json.loads(line) for line in archive.read("audit/events.jsonl").splitlines()]
    full = [e for e in events if "prev_hash" in e]
    stubs = [e for e in events if "prev_hash" not in e]
    assert stubs and all(set(s) == {"seq", "hash"} for s in stubs)
    assert {e["case_id"] for e in full} == {case["id"]}
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[-1]["seq"] + 1))
    assert any(e["action"] == "case.exported" for e in full)
    # The module and the copy inside the ZIP, run with the plain interpreter.
    ran = subprocess.run([sys.executable, "-m", "pdm_records.verify_package", str(path),
                          "--public-key", package["key"]], capture_output=True, text=True,
                         check=False)
    assert ran.returncode == 0 and ran.stdout.strip().endswith("VALID"), ran.stdout
    extracted = tmp_path / "inspector"
    extracted.mkdir()
    (extracted / "verify_package.py").write_bytes(
        zipfile.ZipFile(path).read("verify_package.py"))
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH"}}
    ran = subprocess.run([sys.executable, "-I", "verify_package.py", str(path)],
                         capture_output=True, text=True, check=False, cwd=extracted, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "VALID" in ran.stdout and "WARNING: only the public key embedded" in ran.stdout
    with app.app_context():
        exported = db.session.query(AuditEvent).filter_by(action="case.exported",
                                                          case_id=case["id"]).one()
        assert exported.after is not None and exported.after["cases"] == [case["number"]]


def test_no_other_patients_data_in_the_package(package: dict[str, Any]) -> None:
    with zipfile.ZipFile(package["path"]) as archive:
        manifest = json.loads(archive.read("manifest.json"))
        assert manifest["audit_span"]["upto_seq"] > manifest["audit_span"]["first_seq"]
        blobs = [archive.read(n) for n in archive.namelist()]
        stubs = [json.loads(line) for line in archive.read("audit/events.jsonl").splitlines()
                 if b"prev_hash" not in line]
    assert stubs  # the other case's events are in the span, as stubs only
    raw = package["path"].read_bytes()
    for needle in (b"OTHERPAT-7731", b"other-ct.stl", str(package["other"]["number"]).encode()):
        assert needle not in raw
        assert not any(needle in blob for blob in blobs)  # compressed entries too


TAMPERS = ["edited_file", "rehashed_manifest", "removed_event", "swapped_signature",
           "added_file", "altered_stub", "edited_event", "resigned_with_other_key",
           "removed_checkpoint", "removed_file"]


def test_tampering_is_caught(package: dict[str, Any], tmp_path: Path) -> None:
    """One package, tampered with in each way in turn (a package is slow to make)."""
    for tamper in TAMPERS:
        _tamper_and_check(package, tmp_path / f"{tamper}.zip", tamper)


def _tamper_and_check(package: dict[str, Any], bad: Path, tamper: str) -> None:
    path, number = package["path"], package["case"]["number"]
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        revision = archive.read(f"cases/{number}/revisions/r1.json")
        signature_files = sorted(n for n in names if n.startswith(f"cases/{number}/signatures/"))
        checkpoint = next(n for n in names if n.startswith("audit/checkpoints/"))
        upload = next(n for n in names if n.startswith(f"cases/{number}/files/"))
    events = _events(path)
    expect = ""
    if tamper == "edited_file":
        _rewrite(path, bad, change={upload: b"solid forged\nendsolid\n"})
        expect = "was altered"
    elif tamper == "rehashed_manifest":
        _rewrite(path, bad, change={f"cases/{number}/revisions/r1.json":
                                    revision.replace(b"left orbital", b"right orbital")},
                 rehash=True)
        expect = "manifest signature"
    elif tamper == "removed_event":
        full = [i for i, e in enumerate(events) if "prev_hash" in e]
        _with_events(path, bad, events[:full[1]] + events[full[1] + 1:], rehash=True)
        expect = "manifest signature"
    elif tamper == "swapped_signature":
        first, second = signature_files[0], signature_files[1]
        with zipfile.ZipFile(path) as archive:
            a, b = archive.read(first), archive.read(second)
        _rewrite(path, bad, change={first: b, second: a}, rehash=True)
        expect = "manifest signature"
    elif tamper == "added_file":
        _rewrite(path, bad, add={f"cases/{number}/files/r1/99-extra.stl": b"extra"})
        expect = "not in the manifest"
    elif tamper == "altered_stub":
        index = next(i for i, e in enumerate(events) if "prev_hash" not in e)
        events[index]["hash"] = "f" * 64
        _with_events(path, bad, events, rehash=True)
        expect = "manifest signature"
    elif tamper == "edited_event":
        index = next(i for i, e in enumerate(events) if "prev_hash" in e)
        events[index]["actor_label"] = "Somebody Else <x@example.org>"
        _with_events(path, bad, events)
        expect = "audit/events.jsonl was altered"
    elif tamper == "resigned_with_other_key":
        _rewrite(path, bad, change={f"cases/{number}/revisions/r1.json":
                                    revision.replace(b"left orbital", b"right orbital")},
                 rehash=True, resign=Ed25519PrivateKey.generate())
        expect = "manifest signature"
    elif tamper == "removed_checkpoint":
        _rewrite(path, bad, change={checkpoint: None})
        expect = "listed in the manifest but missing"
    elif tamper == "removed_file":
        _rewrite(path, bad, change={upload: None})
        expect = "missing"
    result = verify_package.verify(str(bad), package["key"].encode())
    assert not result.valid, tamper
    assert any(expect in p for p in result.problems), (tamper, result.problems)
    assert result.verdict().startswith("INVALID: ")
    ran = subprocess.run([sys.executable, "-m", "pdm_records.verify_package", str(bad),
                          "--public-key", package["key"]], capture_output=True, text=True,
                         check=False)
    assert ran.returncode == 1 and "INVALID: " in ran.stdout, ran.stdout


def test_a_consistent_forgery_is_caught_by_the_content_checks(
        package: dict[str, Any], tmp_path: Path) -> None:
    """A forger who rewrites the manifest and re-signs it with their own key passes the
    signature check only without a pinned key; the chain and binding checks still fail."""
    for tamper in ["removed_event", "swapped_signature", "altered_stub",
                   "edited_event_rehashed"]:
        _forge_and_check(package, tmp_path / f"forged-{tamper}.zip", tamper)


def _forge_and_check(package: dict[str, Any], bad: Path, tamper: str) -> None:
    path, number = package["path"], package["case"]["number"]
    forger = Ed25519PrivateKey.generate()
    events = _events(path)
    if tamper == "removed_event":
        full = [i for i, e in enumerate(events) if "prev_hash" in e]
        _with_events(path, bad, events[:full[1]] + events[full[1] + 1:], rehash=True,
                     resign=forger)
        expect = "audit chain"
    elif tamper == "altered_stub":
        index = next(i for i, e in enumerate(events) if "prev_hash" not in e)
        events[index]["hash"] = "f" * 64
        _with_events(path, bad, events, rehash=True, resign=forger)
        expect = "audit chain"
    elif tamper == "edited_event_rehashed":
        index = next(i for i, e in enumerate(events) if "prev_hash" in e)
        events[index]["actor_label"] = "Somebody Else <x@example.org>"
        _with_events(path, bad, events, rehash=True, resign=forger)
        expect = "was edited"
    else:
        with zipfile.ZipFile(path) as archive:
            files = sorted(n for n in archive.namelist()
                           if n.startswith(f"cases/{number}/signatures/"))
            a, b = archive.read(files[0]), archive.read(files[1])
        _rewrite(path, bad, change={files[0]: b, files[1]: a}, rehash=True, resign=forger)
        expect = "swapped"
    unpinned = verify_package.verify(str(bad))
    assert not unpinned.valid and any(expect in p for p in unpinned.problems), \
        (tamper, unpinned.problems)
    pinned = verify_package.verify(str(bad), package["key"].encode())
    assert any("manifest signature" in p or "the manifest names key" in p
               for p in pinned.problems), pinned.problems


def test_unreadable_packages_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not a zip")
    ran = subprocess.run([sys.executable, "-m", "pdm_records.verify_package", str(junk)],
                         capture_output=True, text=True, check=False)
    assert ran.returncode == 2 and "UNREADABLE" in ran.stdout
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("x.txt", b"x")
    assert verify_package.main([str(empty)]) == 2


def test_web_and_api_export_for_quality_only(app: Flask, accounts: Accounts,
                                              catalogue: dict[str, int]) -> None:
    case = create(app, accounts.token("clinician"), {**common(catalogue, "implant"),
                                                     **PATIENT_MATCHED})
    assert attach(app, accounts.token("clinician"), case["id"], binary_stl(),
                  "scan.stl").status_code == 201
    browser = app.test_client()
    accounts.login(browser, "quality")
    page = browser.get(f"/cases/{case['id']}").get_data(as_text=True)
    key = _public_key(app)
    assert "Export audit package" in page and key in page
    response = browser.post(f"/cases/{case['id']}/package",
                            data={"csrf_token": csrf_token(browser, f"/cases/{case['id']}")})
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/zip"
    body = response.get_data()
    response.close()
    result = verify_package.verify(io.BytesIO(body), key.encode())
    assert result.valid, result.problems
    api = app.test_client()
    token = accounts.token("quality")
    shown = api.get("/api/v1/installation-key", headers=bearer(token)).get_json()
    assert shown["public_key"] == key and shown["fingerprint"].startswith("SHA256:")
    one = api.post(f"/api/v1/cases/{case['id']}/package", headers=bearer(token))
    assert one.status_code == 200 and one.mimetype == "application/zip"
    one_body = one.get_data()
    one.close()  # removes the temporary file
    assert verify_package.verify(io.BytesIO(one_body), key.encode()).valid
    other = create(app, accounts.token("clinician"), {**common(catalogue, "guide"),
                                                      "patient_code": "PAT-0002"})
    both = api.post("/api/v1/packages", headers=bearer(token),
                    json={"cases": [case["number"], str(other["id"])]})
    assert both.status_code == 200, both.get_data(as_text=True)[:300]
    both_body = both.get_data()
    both.close()
    with zipfile.ZipFile(io.BytesIO(both_body)) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["cases"] == [case["number"], other["number"]]
    assert verify_package.verify(io.BytesIO(both_body), key.encode()).valid
    missing = api.post("/api/v1/packages", headers=bearer(token), json={"cases": ["PDM-1-1"]})
    assert missing.status_code == 404
    empty = api.post("/api/v1/packages", headers=bearer(token), json={"cases": []})
    assert empty.status_code == 422 and "cases" in empty.get_json()["field_errors"]
    refused = api.post(f"/api/v1/cases/{case['id']}/package",
                       headers=bearer(accounts.token("engineer")))
    assert refused.status_code == 403
    with app.app_context():
        assert db.session.query(AuditEvent).filter_by(action="case.exported",
                                                      case_id=case["id"]).count() == 3


def test_the_signing_key_is_private_and_shown_by_doctor(app: Flask) -> None:
    runner = app.test_cli_runner()
    ran = runner.invoke(args=["pdm", "doctor"])
    key_path = Path(app.config["PDM_SIGNING_KEY_PATH"])
    assert key_path.exists() and (key_path.stat().st_mode & 0o777) == 0o600
    assert f"audit package signing key: Ed25519 public key {_public_key(app)}" in ran.output
    key_path.chmod(0o644)
    ran = runner.invoke(args=["pdm", "doctor"])
    assert "readable by others" in ran.output and ran.exit_code == 1


def test_export_of_an_unknown_case_fails_cleanly(app: Flask, tmp_path: Path) -> None:
    out = tmp_path / "x.zip"
    ran = app.test_cli_runner().invoke(args=["pdm", "export-case", "PDM-2026-999999",
                                             "--output", str(out)])
    assert ran.exit_code == 2 and "No case PDM-2026-999999" in ran.output
    assert not out.exists()


def test_progress_counts_every_byte_of_file_content(app: Flask, accounts: Accounts,
                                                    catalogue: dict[str, int]) -> None:
    from pdm_records.models import Case
    from pdm_records.services.export import prepare_export, write_package
    from pdm_records.signing_key import load_or_create, public_info

    clinician = accounts.token("clinician")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    for index in range(3):
        assert attach(app, clinician, case["id"], binary_stl(scale=10.0 + index),
                      f"scan-{index}.stl").status_code == 201
    with app.app_context():
        row = db.session.get(Case, case["id"])
        assert row is not None
        store = app.extensions["pdm_store_factory"]()
        key = load_or_create(app.config["PDM_SIGNING_KEY_PATH"])
        plan = prepare_export(db.session, store, actor=None, cases=[row],
                              key_fingerprint=public_info(key).fingerprint)
        db.session.commit()
        sizes = [a.file.size for a in row.revisions[0].live_attachments]
        assert plan.total_bytes == sum(sizes) and len(sizes) == 3
        seen: list[int] = []
        sink = io.BytesIO()
        summary = write_package(db.session, store, plan, sink, signing_key=key,
                                progress=seen.append)
        assert sum(seen) == plan.total_bytes
        assert summary.numbers == [row.number] and summary.events >= 5
    pinned = public_info(key).base64.encode()
    assert verify_package.verify(io.BytesIO(sink.getvalue()), pinned).valid


def test_no_package_without_its_audit_event(app: Flask, accounts: Accounts,
                                            catalogue: dict[str, int]) -> None:
    from tests.functional.test_audited_reads import refusing_audit_writes

    case = create(app, accounts.token("clinician"), {**common(catalogue, "implant"),
                                                     **PATIENT_MATCHED})
    token = accounts.token("quality")
    with refusing_audit_writes(app):
        response = app.test_client().post(f"/api/v1/cases/{case['id']}/package",
                                          headers=bearer(token))
    assert response.status_code == 503
    assert "audit trail" in response.get_json()["message"]
    assert not response.data.startswith(b"PK")
    with app.app_context():
        assert db.session.query(AuditEvent).filter_by(action="case.exported").count() == 0
