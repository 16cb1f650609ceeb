"""Python steps of ``scripts/restore-drill`` (docs/security/backup-and-restore.md, scenario 1).

Run with the drill's ``PDM_*`` environment (PostgreSQL database and S3 bucket)::

    python scripts/restore_drill.py case TOKEN ENGINEER_TOKEN PASSWORD PATIENT_CODE
        one small signed case through the real API (/api/v1, bearer tokens, in-process, no web
        server): the clinician creates an implant case, attaches one tiny STL (a 20 mm cube,
        684 bytes: the drill locks what it writes, so it writes little) and submits it with
        their signature; the engineer accepts it, uploads a design iteration (an 18 mm cube)
        and queues its verification (run `pdm worker --once` next: it stores the report).
        Prints {"case_id", "number", "status", "verification_job"}.
    python scripts/restore_drill.py keys
        every key in the configured store, one per line (sorted).
    python scripts/restore_drill.py expect CHECK ARGS...
        one expectation of the drill on saved JSON outputs; prints "ok: ..." or "FAIL: ..."
        (exit 1). Checks: orphans, repaired, clean, verify-storage, audit-behind.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DEVICE_TYPE = "Patient-specific cranial/facial implant"  # from `pdm demo`
INSTITUTION = "Example University Hospital"
CHECKPOINT_PREFIX = "audit/checkpoints/"

_CUBE = [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]
_FACES = [(0, 2, 1), (0, 3, 2), (4, 5, 6), (4, 6, 7), (0, 1, 5), (0, 5, 4),
          (2, 3, 7), (2, 7, 6), (1, 2, 6), (1, 6, 5), (3, 0, 4), (3, 4, 7)]


def cube_stl(size_mm: float = 20.0) -> bytes:
    out = io.BytesIO()
    out.write(b"pdm-records restore drill".ljust(80, b" "))
    out.write(struct.pack("<I", len(_FACES)))
    for face in _FACES:
        out.write(struct.pack("<3f", 0.0, 0.0, 0.0))
        for index in face:
            out.write(struct.pack("<3f", *(c * size_mm for c in _CUBE[index])))
        out.write(b"\x00\x00")
    return out.getvalue()


def _answer(response: Any, expected: int, what: str) -> dict[str, Any]:
    body = response.get_json(silent=True) or {}
    if response.status_code != expected:
        print(f"error: {what}: HTTP {response.status_code}: {json.dumps(body)[:500]}",
              file=sys.stderr)
        sys.exit(1)
    return dict(body)


def make_case(token: str, engineer_token: str, password: str, patient_code: str) -> None:
    import sqlalchemy as sa

    from app import app
    from pdm_records.extensions import db
    from pdm_records.models import DeviceType, Site

    with app.app_context():
        device_type_id = db.session.scalar(sa.select(DeviceType.id)
                                           .where(DeviceType.name == DEVICE_TYPE))
        institution_id = db.session.scalar(sa.select(Site.id).where(Site.name == INSTITUTION))
        db.session.rollback()
    if device_type_id is None or institution_id is None:
        print("error: the demo catalogue is missing (run `pdm demo` first)", file=sys.stderr)
        sys.exit(1)
    headers = {"Authorization": f"Bearer {token}"}
    client = app.test_client()
    case = _answer(client.post("/api/v1/cases", headers=headers, json={
        "patient_code": patient_code, "device_type_id": device_type_id,
        "institution_id": institution_id, "anatomical_site": "left orbital floor",
        "side": "left", "intended_use": "reconstruction of the orbital floor",
        "clinical_indication": "blow-out fracture", "needed_by": "2030-01-15",
        "imaging_modality": "CT", "imaging_date": "2026-11-01", "slice_thickness_mm": 0.625,
        "processing_applied": "none", "requested_parameters": {"wall_thickness": 2.0},
    }), 201, "create the case")
    _answer(client.post(f"/api/v1/cases/{case['id']}/attachments", headers=headers,
                        data={"file": (io.BytesIO(cube_stl()), "plan.stl"), "kind": "model_3d",
                              "units": "mm"},
                        content_type="multipart/form-data"), 201, "attach the model")
    signed = _answer(client.post(f"/api/v1/cases/{case['id']}/submit", headers=headers,
                                 json={"password": password}), 200, "sign and submit")
    engineer = {"Authorization": f"Bearer {engineer_token}"}
    _answer(client.post(f"/api/v1/cases/{case['id']}/transitions", headers=engineer,
                        json={"to": "accepted"}), 200, "accept the case")
    iteration = _answer(client.post(f"/api/v1/cases/{case['id']}/iterations", headers=engineer,
                                    data={"file": (io.BytesIO(cube_stl(18.0)), "design.stl"),
                                          "units": "mm"},
                                    content_type="multipart/form-data"),
                        201, "upload a design iteration")
    job = _answer(client.post(f"/api/v1/cases/{case['id']}/iterations/{iteration['number']}"
                              "/verify", headers=engineer), 202, "queue its verification")
    print(json.dumps({"case_id": case["id"], "number": signed.get("number", case.get("number")),
                      "status": signed.get("status"), "verification_job": job.get("id")}))


def list_keys() -> None:
    from app import app

    with app.app_context():
        store = app.extensions["pdm_store_factory"]()
        for key in sorted(store.iter_keys()):
            print(key)


# --- expectations -------------------------------------------------------------------------

class Failed(Exception):
    pass


def _load(path: str) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


def _lines(path: str) -> list[str]:
    return [line for line in Path(path).read_text().splitlines() if line.strip()]


def _after_backup(before: str, after: str) -> list[str]:
    """Keys in the bucket at the disaster that were not there at the backup (checkpoints apart:
    reconcile leaves those to verify-audit)."""
    known = set(_lines(before))
    return sorted(k for k in _lines(after)
                  if k not in known and not k.startswith(CHECKPOINT_PREFIX))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def check_orphans(report: str, before: str, after: str, code: str) -> str:
    """reconcile after the restore: exit 1, every object written after the backup is an orphan
    (with its version id), nothing else is wrong."""
    data, lost = _load(report), _after_backup(before, after)
    _require(bool(lost), "no object was written after the backup: the drill proves nothing")
    _require(code == "1", f"reconcile exit code {code}, expected 1 (orphans found)")
    kinds = sorted({f["kind"] for f in data["findings"]})
    _require(kinds == ["orphan"], f"finding kinds {kinds}, expected only orphans "
                                  "(nothing missing, altered or under-locked)")
    orphans = sorted(f["key"] for f in data["findings"])
    _require(orphans == lost, f"orphans {orphans} != objects written after the backup {lost}")
    _require(all(f.get("version_id") for f in data["findings"]), "an orphan has no version id")
    _require(not data["known"] and not data["known_orphans"], "known findings in a fresh restore")
    return (f"{len(orphans)} object(s) written after the backup reported as orphans; "
            f"{data['checked']} indexed object(s) present and intact")


def check_repaired(report: str, before: str, after: str, code: str) -> str:
    data, lost = _load(report), _after_backup(before, after)
    _require(code == "0", f"reconcile --repair exit code {code}, expected 0")
    _require(data["repaired"] == len(lost) and data["unresolved"] == 0,
             f"repaired {data['repaired']}, unresolved {data['unresolved']}; expected "
             f"{len(lost)} repaired, 0 unresolved")
    repairs = [str(f.get("repair") or "") for f in data["findings"]]
    _require(all(r.startswith("quarantined") for r in repairs), f"repairs: {repairs}")
    return (f"{data['repaired']} orphan(s) quarantined (tagged in the bucket, listed in the "
            "database)")


def check_clean(report: str, before: str, after: str, code: str) -> str:
    data, lost = _load(report), _after_backup(before, after)
    _require(code == "0", f"second reconcile exit code {code}, expected 0")
    _require(data["discrepancies"] == 0 and not data["findings"],
             f"second reconcile still finds {data['discrepancies']} discrepancies")
    _require(sorted(data["known_orphans"]) == lost,
             f"known orphans {data['known_orphans']} != {lost}")
    return f"second reconcile clean; the {len(lost)} quarantined orphan(s) listed as known"


def check_verify_storage(report: str, code: str) -> str:
    data = _load(report)
    _require(code == "0" and data["ok"] and data["discrepancies"] == 0,
             f"verify-storage exit code {code}, {data.get('discrepancies')} discrepancies")
    return f"verify-storage: {data['checked']} indexed object(s) present, SHA-256 and locks ok"


def check_audit_behind(report: str, code: str, restored_head: str, lost_checkpoint: str) -> str:
    """verify-audit after the restore: the restored events verify up to the restored head, and
    the checkpoint taken after the backup (which the dump does not know) is flagged."""
    data, head, lost = _load(report), int(restored_head), int(lost_checkpoint)
    _require(code == "1" and not data["ok"], f"verify-audit exit code {code}, ok={data['ok']}: "
             f"a checkpoint beyond the restored chain must not pass")
    brk = data.get("first_break") or {}
    _require(brk.get("reason") == "checkpoint mismatch",
             f"first break {brk}, expected a checkpoint mismatch")
    _require(lost > head, f"the lost checkpoint (event {lost}) is not beyond the head {head}")
    _require(int(brk["seq"]) > head, f"the break at event {brk['seq']} is inside the restored "
             f"chain (head {head}): the restored events do not verify")
    _require(data["events"] >= head, f"only {data['events']} events verified, head {head}")
    _require(not data["problems"], f"other problems: {data['problems']}")
    return (f"verify-audit: the restored chain (head event {head} at the restore, "
            f"{data['head_seq']} now) verifies; checkpoint "
            f"{lost} (taken after the backup) is flagged at event {brk['seq']} "
            f"({brk['reason']}): at least {lost - head} audit event(s) were lost")


CHECKS: dict[str, Callable[..., str]] = {
    "orphans": check_orphans, "repaired": check_repaired, "clean": check_clean,
    "verify-storage": check_verify_storage, "audit-behind": check_audit_behind}


def expect(name: str, *args: str) -> None:
    try:
        message = CHECKS[name](*args)
    except Failed as exc:
        print(f"FAIL: {name}: {exc}")
        sys.exit(1)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"FAIL: {name}: unreadable output ({type(exc).__name__}: {exc})")
        sys.exit(1)
    print(f"ok: {message}")


def main(argv: list[str]) -> None:
    if len(argv) == 5 and argv[0] == "case":
        make_case(*argv[1:])
    elif argv == ["keys"]:
        list_keys()
    elif len(argv) >= 2 and argv[0] == "expect" and argv[1] in CHECKS:
        expect(argv[1], *argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
