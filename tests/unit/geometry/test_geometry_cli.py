"""The command-line entry point runs the same pipeline and reports through its exit status."""

from __future__ import annotations

import json
from pathlib import Path

import pdm_meshgen as G
import pytest

from pdm_records.geometry.cli import main


def test_cli_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "part.stl"
    path.write_bytes(G.binary_stl(*G.hollow_box()))
    assert main([str(path), "--json", "--samples", "300"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["measurements"]["watertight"] is True
    assert report["input"]["file_type"] == "stl"


def test_cli_envelope_failure_and_bad_file(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "part.stl"
    path.write_bytes(G.binary_stl(*G.hollow_box()))
    env = tmp_path / "env.json"
    env.write_text(json.dumps({"max_extents": [5.0, 5.0, 5.0]}))
    assert main([str(path), "--envelope", str(env), "--samples", "100"]) == 1
    assert "FAIL" in capsys.readouterr().out
    bad = tmp_path / "bad.stl"
    bad.write_bytes(b"")
    assert main([str(bad)]) == 2
    assert "[empty]" in capsys.readouterr().err
    env.write_text(json.dumps({"max_volume": 1.0, "min_volume": 2.0}))
    assert main([str(path), "--envelope", str(env)]) == 2
    assert "min_volume" in capsys.readouterr().err
