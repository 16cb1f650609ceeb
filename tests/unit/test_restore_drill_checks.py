"""The expectations of scripts/restore-drill fail when the restore is not what the docs promise
(the drill itself runs in tests/integration/test_restore_drill.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def drill() -> ModuleType:
    spec = importlib.util.spec_from_file_location("restore_drill", ROOT / "scripts" /
                                                  "restore_drill.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["restore_drill"] = module
    spec.loader.exec_module(module)
    return module


BEFORE = ["audit/checkpoints/000000000035.json", "records/PDM-2026-000001/a.json"]
AFTER = [*BEFORE, "audit/checkpoints/000000000052.json", "draft/2026/12/x",
         "records/PDM-2026-000002/b.json"]
LOST = ["draft/2026/12/x", "records/PDM-2026-000002/b.json"]


def _orphan(key: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "orphan", "key": key, "version_id": "v1", **extra}


@pytest.fixture
def files(tmp_path: Path) -> Any:
    (tmp_path / "before.txt").write_text("\n".join(BEFORE) + "\n")
    (tmp_path / "after.txt").write_text("\n".join(AFTER) + "\n")

    def write(name: str, data: dict[str, Any]) -> str:
        path = tmp_path / name
        path.write_text(json.dumps(data))
        return str(path)

    write.before = str(tmp_path / "before.txt")  # type: ignore[attr-defined]
    write.after = str(tmp_path / "after.txt")  # type: ignore[attr-defined]
    return write


def _reconcile(findings: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"findings": findings, "known": [], "known_orphans": [], "checked": 5,
            "discrepancies": len(findings), "repaired": 0, "unresolved": len(findings), **extra}


def test_orphans_pass_only_for_exactly_the_objects_written_after_the_backup(
        drill: ModuleType, files: Any) -> None:
    good = files("r.json", _reconcile([_orphan(k) for k in LOST]))
    assert "2 object(s) written after the backup" in drill.check_orphans(
        good, files.before, files.after, "1")
    missing_one = files("r1.json", _reconcile([_orphan(LOST[0])]))
    damaged = files("r2.json", _reconcile([*(_orphan(k) for k in LOST),
                                           {"kind": "missing", "key": BEFORE[1]}]))
    no_version = files("r3.json", _reconcile([_orphan(LOST[0]),
                                              _orphan(LOST[1], version_id=None)]))
    for path, code in ((good, "0"), (missing_one, "1"), (damaged, "1"), (no_version, "1")):
        with pytest.raises(drill.Failed):
            drill.check_orphans(path, files.before, files.after, code)


def test_repair_and_second_run_must_account_for_every_orphan(drill: ModuleType,
                                                             files: Any) -> None:
    repaired = _reconcile([_orphan(k, repair="quarantined: …") for k in LOST], repaired=2,
                          unresolved=0)
    assert drill.check_repaired(files("a.json", repaired), files.before, files.after, "0")
    with pytest.raises(drill.Failed):
        drill.check_repaired(files("b.json", {**repaired, "repaired": 1, "unresolved": 1}),
                             files.before, files.after, "1")
    clean = _reconcile([], known_orphans=LOST)
    assert drill.check_clean(files("c.json", clean), files.before, files.after, "0")
    with pytest.raises(drill.Failed):  # an orphan nobody can find
        drill.check_clean(files("d.json", {**clean, "known_orphans": LOST[:1]}),
                          files.before, files.after, "0")


def _audit(ok: bool, brk: dict[str, Any] | None, problems: list[str] | None = None) -> dict:
    return {"ok": ok, "events": 36, "head_seq": 36, "first_break": brk,
            "problems": problems or []}


def test_audit_must_flag_the_lost_checkpoint_and_nothing_inside_the_restored_chain(
        drill: ModuleType, files: Any) -> None:
    flagged = {"seq": 37, "reason": "checkpoint mismatch", "detail": "…"}
    assert "at least 17 audit event(s) were lost" in drill.check_audit_behind(
        files("a.json", _audit(False, flagged)), "1", "35", "52")
    cases = [
        (_audit(True, None), "0"),  # a checkpoint beyond the chain silently passes
        (_audit(False, {"seq": 20, "reason": "hash mismatch"}), "1"),  # damaged dump
        (_audit(False, {"seq": 30, "reason": "checkpoint mismatch"}), "1"),  # inside the chain
        (_audit(False, flagged, ["checkpoint object … cannot be used"]), "1"),
    ]
    for n, (data, code) in enumerate(cases):
        with pytest.raises(drill.Failed):
            drill.check_audit_behind(files(f"b{n}.json", data), code, "35", "52")
