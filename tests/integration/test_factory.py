"""Start-up rules: production refuses a broken configuration; CLI commands defer to doctor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pdm_records import create_app
from pdm_records.config import ConfigurationError
from tests.conftest import ROOT


def test_production_server_refuses_a_placeholder_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigurationError) as info:
        create_app({"PDM_ENV": "production", "SECRET_KEY": "change-me"})
    assert "secret key" in str(info.value)


def test_production_server_starts_with_a_sound_configuration(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path))
    app = create_app({"PDM_ENV": "production"})
    secret_file = tmp_path / "secret_key"
    assert secret_file.exists() and (secret_file.stat().st_mode & 0o777) == 0o600
    assert app.config["SECRET_KEY"] == secret_file.read_text().strip()


def test_cli_starts_in_production_despite_problems_and_doctor_reports(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PDM_ENV": "production", "PDM_SECRET_KEY": "change-me",
           "PDM_INSTANCE_PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "pdm", "doctor"], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr
    assert "[FAIL] configuration" in result.stdout
    assert "Traceback" not in result.stderr


def test_wsgi_import_refuses_in_production(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "PDM_ENV": "production", "PDM_SECRET_KEY": "change-me",
           "PDM_INSTANCE_PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", "import app"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "ConfigurationError" in result.stderr and "secret key" in result.stderr
