"""The README documents every setting and the two commands it promises."""

from __future__ import annotations

from pathlib import Path

from pdm_records.config import SETTINGS

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in README]
    assert not missing, f"document these settings in README.md: {missing}"


def test_the_two_commands_exist() -> None:
    root = Path(__file__).resolve().parents[2]
    for command in ("scripts/demo", "scripts/test"):
        assert f"bash {command}" in README
        assert (root / command).is_file()
    assert "exec bash scripts/test" in (root / ".ci" / "run").read_text()
