"""``flask --app app pdm check-mesh``: the geometry report from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask

from tests.meshes import binary_stl


def test_check_mesh_reports_a_cube(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "cube.stl"
    path.write_bytes(binary_stl(scale=10.0))
    result = app.test_cli_runner().invoke(args=["pdm", "check-mesh", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    m = report["measurements"]
    assert m["faces"] == 12 and m["watertight"] is True and m["bodies"] == 1
    assert abs(m["volume"] - 1000.0) < 1e-6
    assert sorted(m["extents"]) == [10.0, 10.0, 10.0]


def test_check_mesh_refuses_a_truncated_file_with_exit_2(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "broken.stl"
    path.write_bytes(binary_stl()[:150])
    result = app.test_cli_runner().invoke(args=["pdm", "check-mesh", str(path), "--json"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert json.loads(result.stdout)["error"]


def test_check_mesh_exit_1_when_the_envelope_fails(app: Flask, tmp_path: Path) -> None:
    path = tmp_path / "cube.stl"
    path.write_bytes(binary_stl(scale=10.0))
    envelope = tmp_path / "envelope.json"
    envelope.write_text(json.dumps({"max_volume": 500.0}))
    result = app.test_cli_runner().invoke(
        args=["pdm", "check-mesh", str(path), "--envelope", str(envelope), "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["evaluation"]["passed"] is False
    check = report["evaluation"]["checks"]["max_volume"]
    assert check["passed"] is False and check["margin"] < 0
