"""load_settings / check_settings: defaults, instance config.toml, PDM_* environment, problems."""

from __future__ import annotations

import stat
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pdm_records.config import SETTINGS, check_settings, load_settings

GOOD_SECRET = "k" * 48


def load(
    instance: Path, environ: Mapping[str, str] | None = None, **overrides: Any
) -> tuple[dict[str, Any], list[str]]:
    # Always pass an explicit environment: the real os.environ must not leak into the tests.
    return load_settings(instance, dict(environ or {}), overrides or None)


def write_toml(instance: Path, text: str) -> None:
    instance.mkdir(parents=True, exist_ok=True)
    (instance / "config.toml").write_text(text)


def test_defaults(tmp_path: Path) -> None:
    config, problems = load(tmp_path)

    assert problems == []
    assert config["PDM_ENV"] == "development"
    assert config["PDM_DATABASE_URL"] == f"sqlite:///{tmp_path / 'pdm.sqlite3'}"
    assert config["SQLALCHEMY_DATABASE_URI"] == config["PDM_DATABASE_URL"]
    assert config["PDM_STORAGE_BACKEND"] == "local"
    assert config["PDM_STORAGE_PATH"] == str(tmp_path / "objects")
    assert config["PDM_MAX_UPLOAD_MB"] == 512
    assert config["MAX_CONTENT_LENGTH"] == 512 * 1024 * 1024
    assert config["PDM_SESSION_IDLE_MINUTES"] == 30  # enforced per request (test_mfa.py)
    assert config["PERMANENT_SESSION_LIFETIME"] == timedelta(hours=12)  # absolute lifetime
    assert config["PDM_MFA_REQUIRED_ROLES"] == "quality,admin"
    assert (config["PDM_LOCKOUT_THRESHOLD"], config["PDM_LOCKOUT_MINUTES"]) == (10, 15)
    assert config["SESSION_COOKIE_SECURE"] is False
    assert config["SESSION_COOKIE_HTTPONLY"] is True
    assert config["SECURITY_PASSWORD_HASH"] == "argon2"


def test_every_setting_has_a_pdm_environment_variable() -> None:
    for setting in SETTINGS:
        assert setting.env.startswith("PDM_")
        assert setting.env == setting.key


def test_environment_overrides_defaults(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {
        "PDM_MAX_UPLOAD_MB": "7",
        "PDM_DATABASE_URL": "postgresql+psycopg://pdm@db/pdm",
        "PDM_STORAGE_PATH": "/srv/pdm/objects",
        "PDM_SESSION_IDLE_MINUTES": " 5 ",
        "PDM_SITE_NAME": "  Clinic North  ",
    })

    assert problems == []
    assert config["PDM_MAX_UPLOAD_MB"] == 7
    assert config["MAX_CONTENT_LENGTH"] == 7 * 1024 * 1024
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://pdm@db/pdm"
    assert config["PDM_STORAGE_PATH"] == "/srv/pdm/objects"
    assert config["PDM_SESSION_IDLE_MINUTES"] == 5
    assert config["PDM_SITE_NAME"] == "Clinic North"


def test_unrelated_environment_variables_are_ignored(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {"MAX_UPLOAD_MB": "1", "SECRET_KEY": "x"})
    assert problems == []
    assert config["MAX_CONTENT_LENGTH"] == 512 * 1024 * 1024


@pytest.mark.parametrize("variable", ["PDM_MAX_UPLOAD_MB", "PDM_TOKEN_EXPIRY_DAYS",
                                      "PDM_SESSION_IDLE_MINUTES", "PDM_PAGE_SIZE"])
def test_bad_integer_is_reported_and_default_kept(tmp_path: Path, variable: str) -> None:
    default = {s.key: s.default for s in SETTINGS}[variable]

    config, problems = load(tmp_path, {variable: "lots"})

    assert config[variable] == default
    assert len(problems) == 1
    assert variable in problems[0]
    assert "'lots'" in problems[0]


def test_bad_upload_size_keeps_default_content_length(tmp_path: Path) -> None:
    config, _ = load(tmp_path, {"PDM_MAX_UPLOAD_MB": "7.5"})
    assert config["MAX_CONTENT_LENGTH"] == 512 * 1024 * 1024


def test_instance_toml_is_applied_and_unknown_keys_reported(tmp_path: Path) -> None:
    write_toml(tmp_path, """
max_upload_mb = 64
PDM_SITE_NAME = "Clinic South"
preferred_url_scheme = "https"
colour = "blue"
PDM_NOT_A_SETTING = 1
""")

    config, problems = load(tmp_path)

    assert config["PDM_MAX_UPLOAD_MB"] == 64
    assert config["MAX_CONTENT_LENGTH"] == 64 * 1024 * 1024
    assert config["PDM_SITE_NAME"] == "Clinic South"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert "colour" not in config and "PDM_COLOUR" not in config
    assert "PDM_NOT_A_SETTING" not in config
    assert len(problems) == 2
    assert any("unknown setting 'colour'" in p for p in problems)
    assert any("unknown setting 'PDM_NOT_A_SETTING'" in p for p in problems)


def test_unreadable_toml_is_reported_not_raised(tmp_path: Path) -> None:
    write_toml(tmp_path, "max_upload_mb = = 3\n")

    config, problems = load(tmp_path)

    assert config["PDM_MAX_UPLOAD_MB"] == 512
    assert len(problems) == 1
    assert "config.toml" in problems[0]
    assert "cannot be read" in problems[0]


def test_environment_beats_toml(tmp_path: Path) -> None:
    write_toml(tmp_path, 'max_upload_mb = 64\nsite_name = "From toml"\n')

    config, problems = load(tmp_path, {"PDM_MAX_UPLOAD_MB": "9"})

    assert problems == []
    assert config["MAX_CONTENT_LENGTH"] == 9 * 1024 * 1024
    assert config["PDM_SITE_NAME"] == "From toml"


def test_overrides_beat_environment(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {"PDM_MAX_UPLOAD_MB": "9"}, PDM_MAX_UPLOAD_MB=3,
                            PDM_SECRET_KEY=GOOD_SECRET)
    assert problems == []
    assert config["MAX_CONTENT_LENGTH"] == 3 * 1024 * 1024
    assert config["SECRET_KEY"] == GOOD_SECRET


def test_secret_key_generated_once_with_private_mode(tmp_path: Path) -> None:
    instance = tmp_path / "instance"

    first, problems = load(instance)

    key_file = instance / "secret_key"
    assert problems == []
    assert key_file.is_file()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(first["SECRET_KEY"]) >= 32
    assert key_file.read_text().strip() == first["SECRET_KEY"]
    assert first["PDM_SECRET_KEY"] == first["SECRET_KEY"]

    second, _ = load(instance)

    assert second["SECRET_KEY"] == first["SECRET_KEY"]
    assert second["SECURITY_PASSWORD_SALT"] == first["SECURITY_PASSWORD_SALT"]


def test_secret_key_differs_between_instances(tmp_path: Path) -> None:
    one, _ = load(tmp_path / "one")
    two, _ = load(tmp_path / "two")
    assert one["SECRET_KEY"] != two["SECRET_KEY"]
    assert one["SECURITY_PASSWORD_SALT"] != two["SECURITY_PASSWORD_SALT"]


def test_secret_key_from_environment_writes_no_file(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {"PDM_SECRET_KEY": GOOD_SECRET})
    assert problems == []
    assert config["SECRET_KEY"] == GOOD_SECRET
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize("secret", ["change-me", "CHANGEME", "dev", "secret", "short-but-real"])
def test_placeholder_or_short_secret_is_reported(tmp_path: Path, secret: str) -> None:
    _, problems = load(tmp_path, {"PDM_SECRET_KEY": secret})
    assert len(problems) == 1
    assert "secret key" in problems[0]


@pytest.mark.parametrize("secret", ["change-me", "  Change-Me".ljust(40), " " * 40])
def test_check_settings_reports_placeholder_secret(tmp_path: Path, secret: str) -> None:
    config, _ = load(tmp_path, {"PDM_SECRET_KEY": GOOD_SECRET})
    assert check_settings(config) == []

    # Padded to 32+ characters, the placeholder must still be recognised as one.
    problems = check_settings({**config, "SECRET_KEY": secret})

    assert len(problems) == 1
    assert "placeholder" in problems[0]


def test_unknown_environment_name_is_reported(tmp_path: Path) -> None:
    _, problems = load(tmp_path, {"PDM_ENV": "staging"})
    assert len(problems) == 1
    assert "PDM_ENV" in problems[0]
    assert "'staging'" in problems[0]


def test_production_environment_is_accepted(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {"PDM_ENV": "production"})
    assert problems == []
    assert config["PDM_ENV"] == "production"


def test_invalid_patient_code_pattern_is_reported(tmp_path: Path) -> None:
    _, problems = load(tmp_path, {"PDM_PATIENT_CODE_PATTERN": "^[A-Z"})
    assert len(problems) == 1
    assert "PDM_PATIENT_CODE_PATTERN" in problems[0]
    assert "regular expression" in problems[0]


@pytest.mark.parametrize(
    ("environ", "fragment"),
    [
        ({"PDM_STORAGE_BACKEND": "ftp"}, "PDM_STORAGE_BACKEND"),
        ({"PDM_STORAGE_BACKEND": "s3"}, "PDM_S3_BUCKET"),
        ({"PDM_S3_LOCK_MODE": "compliance"}, "PDM_S3_LOCK_MODE"),
        ({"PDM_MAX_UPLOAD_MB": "0"}, "PDM_MAX_UPLOAD_MB"),
        ({"PDM_TOKEN_EXPIRY_DAYS": "-1"}, "PDM_TOKEN_EXPIRY_DAYS"),
    ],
)
def test_other_unsound_values_are_reported(
    tmp_path: Path, environ: dict[str, str], fragment: str
) -> None:
    _, problems = load(tmp_path, environ)
    assert len(problems) == 1
    assert fragment in problems[0]


def test_s3_backend_with_bucket_is_sound(tmp_path: Path) -> None:
    _, problems = load(tmp_path, {"PDM_STORAGE_BACKEND": "s3", "PDM_S3_BUCKET": "pdm-records"})
    assert problems == []


def test_https_scheme_turns_on_secure_cookies(tmp_path: Path) -> None:
    config, problems = load(tmp_path, {"PDM_PREFERRED_URL_SCHEME": "https"})

    assert problems == []
    assert config["PREFERRED_URL_SCHEME"] == "https"
    assert config["SESSION_COOKIE_SECURE"] is True
    assert config["REMEMBER_COOKIE_SECURE"] is True


def test_invalid_values_in_config_toml_are_problems_not_crashes(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'max_upload_mb = "lots"\nsession_idle_minutes = 1.5\npage_size = 10\n')
    config, problems = load_settings(tmp_path, environ={})
    assert config["PDM_MAX_UPLOAD_MB"] == 512
    assert config["PDM_PAGE_SIZE"] == 10
    assert any("max_upload_mb" in p for p in problems)
    assert any("session_idle_minutes" in p for p in problems)


def test_an_empty_secret_file_is_regenerated(tmp_path: Path) -> None:
    (tmp_path / "secret_key").write_text("")
    config, problems = load_settings(tmp_path, environ={})
    assert len(config["SECRET_KEY"]) >= 32
    assert not [p for p in problems if "secret" in p]


def test_governance_bypass_only_with_governance(tmp_path: Path) -> None:
    env = {"PDM_SECRET_KEY": GOOD_SECRET, "PDM_S3_GOVERNANCE_BYPASS": "true"}
    config, problems = load(tmp_path, env)
    assert config["PDM_S3_GOVERNANCE_BYPASS"] is True
    assert any("PDM_S3_GOVERNANCE_BYPASS applies only" in p for p in problems)
    config, problems = load(tmp_path, {**env, "PDM_S3_LOCK_MODE": "GOVERNANCE"})
    assert problems == []
    assert load(tmp_path, {"PDM_SECRET_KEY": GOOD_SECRET})[0]["PDM_S3_GOVERNANCE_BYPASS"] is False
