"""``flask --app app pdm …`` commands, through Flask's CLI runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from pdm_records import create_app
from pdm_records.extensions import db
from pdm_records.models import AuditEvent, User
from tests.conftest import _base_config
from tests.totp import current_counter, totp_at


def test_init_is_safe_to_run_twice(app: Flask) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["pdm", "init", "--admin-email", "boss@example.org"])
    assert first.exit_code == 0, first.output
    assert "administrator: created boss@example.org" in first.output
    password = re.search(r"password \(shown once\): (\S+)", first.output)
    assert password and len(password.group(1)) >= 16
    second = runner.invoke(args=["pdm", "init", "--admin-email", "boss@example.org"])
    assert second.exit_code == 0, second.output
    assert "exists already" in second.output
    with app.app_context():
        assert db.session.query(User).count() == 1


def test_init_takes_the_password_from_the_environment(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["pdm", "init"], env={"PDM_ADMIN_PASSWORD": "a good admin passphrase"})
    assert result.exit_code == 0, result.output
    assert "shown once" not in result.output
    client = app.test_client()
    app.config["WTF_CSRF_ENABLED"] = False
    first = client.post("/login", data={"email": "admin@example.org",
                                        "password": "a good admin passphrase"})
    # Administrators must use two-factor sign-in: the first sign-in enrols (in the browser).
    assert first.status_code == 302 and first.headers["Location"].endswith("/tf-setup")
    assert client.get("/admin/users").status_code == 302
    page = client.post("/tf-setup", data={"setup": "authenticator"}).get_data(as_text=True)
    key = re.search(r"Key: <code>([A-Z2-7 -]+)</code>", page)
    assert key and 'src="data:image/' in page  # the QR code, inline (CSP allows data: images)
    done = client.post("/tf-validate", data={"code": totp_at(key.group(1), current_counter())})
    assert done.status_code == 302 and "/tf-" not in done.headers["Location"]
    assert client.get("/admin/users").status_code == 200


def test_init_with_a_weak_password_fails_cleanly(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["pdm", "init", "--admin-password", "short"])
    assert result.exit_code == 2
    assert "password: Use at least 12 characters." in result.output
    assert "Traceback" not in result.output


def test_create_user_and_token(app: Flask) -> None:
    runner = app.test_cli_runner()
    created = runner.invoke(args=["pdm", "create-user", "--email", "eng@example.org",
                                  "--name", "Erin Engineer", "--role", "engineer",
                                  "--role", "quality"])
    assert created.exit_code == 0, created.output
    assert "created eng@example.org (engineer, quality)" in created.output
    token = runner.invoke(args=["pdm", "create-token", "eng@example.org", "--days", "3"])
    assert token.exit_code == 0, token.output
    secret = token.output.strip()
    headers = {"Authorization": f"Bearer {secret}"}
    # Quality must use two-factor sign-in: the token works once the account has enrolled.
    assert app.test_client().get("/api/v1/me", headers=headers).status_code == 401
    with app.app_context():
        from pdm_records.security.mfa import enrol

        user = db.session.query(User).filter_by(email="eng@example.org").one()
        enrol(user)
        db.session.commit()
    me = app.test_client().get("/api/v1/me", headers=headers)
    assert me.status_code == 200 and me.get_json()["roles"] == ["engineer", "quality"]


@pytest.mark.parametrize(("args", "message"), [
    (["--email", "bad", "--name", "X Y", "--role", "engineer"], "email:"),
    (["--email", "c@example.org", "--name", "X Y", "--role", "clinician"],
     "registration_number:"),
    (["--email", "c@example.org", "--name", "X Y", "--role", "engineer",
      "--password", "short"], "password:"),
])
def test_create_user_errors_are_clear(app: Flask, args: list[str], message: str) -> None:
    result = app.test_cli_runner().invoke(args=["pdm", "create-user", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert db.session.query(User).count() == 0


def test_create_token_for_unknown_user(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["pdm", "create-token", "ghost@example.org"])
    assert result.exit_code == 2
    assert "no active account 'ghost@example.org'" in result.output


def test_demo_twice_prints_working_logins(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["pdm", "demo"])
    result = runner.invoke(args=["pdm", "demo"])
    assert result.exit_code == 0, result.output
    logins = re.findall(r"^\s+(\w+)\s+(\S+@example\.org)\s+(\S+)$", result.output, re.M)
    assert {role for role, _, _ in logins} == {"clinician", "engineer", "quality", "admin"}
    keys = dict(re.findall(r"^\s+(\S+@example\.org)\s+TOTP key (\S+)$", result.output, re.M))
    uris = re.findall(r"^\s+(otpauth://totp/\S+)$", result.output, re.M)
    assert set(keys) == {"quality@example.org", "quality.lead@example.org", "admin@example.org"}
    assert len(uris) == 3 and all("secret=" in uri for uri in uris)
    app.config["WTF_CSRF_ENABLED"] = False
    for _role, email, password in logins:
        client = app.test_client()
        client.post("/login", data={"email": email, "password": password})
        if email in keys:
            assert client.get("/dashboard").status_code == 302, email  # code still missing
            client.post("/tf-validate", data={"code": totp_at(keys[email], current_counter() + 1)})
        assert client.get("/dashboard").status_code == 200, email
    with app.app_context():
        assert db.session.query(User).count() == 5
        from pdm_records.models import EnvelopeStatus, EnvelopeVersion

        approved = db.session.query(EnvelopeVersion).filter_by(status=EnvelopeStatus.APPROVED)
        assert approved.count() == 2  # once, not twice: demo is safe to run twice
        sites = db.session.execute(sa.text("SELECT count(*) FROM site")).scalar()
        types = db.session.execute(sa.text("SELECT count(*) FROM device_type")).scalar()
        assert (sites, types) == (2, 2)
        assert db.session.query(AuditEvent).filter_by(action="device_type.created").count() == 2


def test_doctor_passes_on_a_healthy_install(app: Flask) -> None:
    runner = app.test_cli_runner()
    runner.invoke(args=["pdm", "init", "--admin-password", "a good admin passphrase"])
    result = runner.invoke(args=["pdm", "doctor"])
    assert result.exit_code == 0, result.output
    assert "all checks passed" in result.output
    assert "[ok  ] database schema: at head" in result.output


def test_doctor_reports_what_is_wrong_and_how_to_fix_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDM_INSTANCE_PATH", str(tmp_path / "instance"))
    config = _base_config(f"sqlite:///{tmp_path / 'empty.sqlite3'}", tmp_path)
    config.update({"SECRET_KEY": "change-me", "PDM_SECRET_KEY": "change-me"})
    app = create_app(config)
    result = app.test_cli_runner().invoke(args=["pdm", "doctor"])
    assert result.exit_code == 1
    assert "[FAIL] configuration: the secret key is missing, a placeholder" in result.output
    assert "[FAIL] database schema: at no revision" in result.output
    assert "fix: run: flask --app app pdm init" in result.output


def test_envelope_import_and_export(app: Flask, tmp_path: Path) -> None:
    import yaml

    runner = app.test_cli_runner()
    runner.invoke(args=["pdm", "demo", "--password", "demo passphrase 1"])
    with app.app_context():
        from pdm_records.models import DeviceType

        guide = db.session.query(DeviceType).filter(DeviceType.name.like("%guide%")).one()
        guide_id = guide.id
    source = tmp_path / "guide.yaml"
    source.write_text("max_extents: [120, 80, 40]\nmin_wall_thickness: 2.5\n"
                      "watertight_required: true\n")
    wrong = runner.invoke(args=["pdm", "envelope", "import", str(source), "--device-type-id",
                                str(guide_id), "--author", "quality@example.org",
                                "--password", "not it at all"])
    assert wrong.exit_code == 2 and "nothing was drafted" in wrong.output
    imported = runner.invoke(args=["pdm", "envelope", "import", str(source), "--device-type-id",
                                   str(guide_id), "--author", "quality@example.org",
                                   "--password", "demo passphrase 1"])
    assert imported.exit_code == 0, imported.output
    version_id = int(re.search(r"\(id (\d+)\)", imported.output).group(1))  # type: ignore[union-attr]
    exported = runner.invoke(args=["pdm", "envelope", "export", str(version_id)])
    assert exported.exit_code == 0
    assert "draft" in exported.output.splitlines()[0]
    assert yaml.safe_load(exported.output)["min_wall_thickness"] == 2.5
    bad = tmp_path / "bad.yaml"
    bad.write_text("min_wall_thickness: 3\nmax_wall_thickness: 1\n")
    refused = runner.invoke(args=["pdm", "envelope", "import", str(bad), "--device-type-id",
                                  str(guide_id), "--author", "quality@example.org",
                                  "--password", "demo passphrase 1"])
    assert refused.exit_code == 2 and "min_wall_thickness" in refused.output
    assert "Traceback" not in refused.output
