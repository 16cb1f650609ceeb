"""The customer security documentation cannot drift from the code (IMDRF N60 / DOMAIN.md §8:
customer security documentation; 21 CFR 11.10(k): control of system documentation).

- roles-and-permissions.md holds the role × permission table generated from permissions.py;
- every ``PDM_*`` name in the security documents is a real setting (config.py SETTINGS);
- the configuration checklist covers the security-relevant settings;
- nginx's body limit and timeouts match the app's and gunicorn's;
- every relative link in the documents points at a file.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from pdm_records.config import SETTINGS, SETTINGS_BY_KEY
from pdm_records.permissions import ROLE_DESCRIPTIONS, ROLE_PERMISSIONS, Permission, Role

ROOT = Path(__file__).resolve().parents[2]
SECURITY_DOCS = [ROOT / "SECURITY.md", *sorted((ROOT / "docs" / "security").glob("*.md"))]
TABLE_START = "<!-- permission-table:start (generated from pdm_records/permissions.py) -->"
TABLE_END = "<!-- permission-table:end -->"
# Environment variables that are read outside SETTINGS on purpose (instance folder, one-off
# passwords of CLI commands).
NOT_SETTINGS = {"PDM_INSTANCE_PATH", "PDM_ADMIN_PASSWORD", "PDM_NEW_USER_PASSWORD",
                "PDM_DEMO_PASSWORD", "PDM_AUTHOR_PASSWORD"}
# Documents written by parallel work on the same issue (2FA, audit trail, storage consistency);
# present once the branches are merged.
FROM_OTHER_WORK = {"docs/security/authentication.md", "docs/audit-trail.md",
                   "docs/storage-consistency.md", "docs/s3.md"}


def permission_table() -> str:
    """The markdown table of roles × permissions, as roles-and-permissions.md must contain it."""
    roles = list(Role)
    lines = ["| permission | " + " | ".join(r.value for r in roles) + " |",
             "|---|" + "---|" * len(roles)]
    for permission in Permission:
        if permission in (Permission.PUBLIC, Permission.AUTHENTICATED):
            marks = ["✓"] * len(roles)  # granted to every account (PUBLIC: even without one)
        else:
            marks = ["✓" if permission in ROLE_PERMISSIONS[r] else "—" for r in roles]
        lines.append(f"| `{permission.value}` ({permission.name}) | " + " | ".join(marks) + " |")
    return "\n".join(lines)


def test_roles_document_matches_permissions_py() -> None:
    text = (ROOT / "docs" / "security" / "roles-and-permissions.md").read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    assert text[start:end].strip() == permission_table(), (
        "docs/security/roles-and-permissions.md is out of date; replace its table with:\n\n"
        + permission_table())
    for role, description in ROLE_DESCRIPTIONS.items():
        assert f"**{role.value}**" in text, f"describe the {role.value} role"
        assert description in text, f"use the description of {role.value} from permissions.py"


def test_every_setting_named_in_the_security_documents_exists() -> None:
    named: dict[str, set[str]] = {}
    for path in SECURITY_DOCS:
        for name in re.findall(r"\bPDM_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()):
            named.setdefault(name, set()).add(path.name)
    unknown = {n: sorted(files) for n, files in named.items()
               if n not in SETTINGS_BY_KEY and n not in NOT_SETTINGS
               and not n.startswith("PDM_TEST_")}
    assert not unknown, f"not settings in config.py: {unknown}"
    assert len(named) >= 12  # the documents do name the settings


def test_configuration_checklist_covers_the_security_settings() -> None:
    text = (ROOT / "docs" / "security" / "configuration-checklist.md").read_text()
    required = {"PDM_ENV", "PDM_SECRET_KEY", "PDM_DATABASE_URL", "PDM_STORAGE_BACKEND",
                "PDM_S3_BUCKET", "PDM_S3_LOCK_MODE", "PDM_S3_SSE", "PDM_PREFERRED_URL_SCHEME",
                "PDM_PROXY_COUNT", "PDM_LOGIN_RATE_LIMIT", "PDM_RATELIMIT_STORAGE_URI",
                "PDM_SESSION_IDLE_MINUTES", "PDM_TOKEN_EXPIRY_DAYS", "PDM_MAX_UPLOAD_MB",
                "PDM_ZIP_MAX_DECOMPRESSED_MB", "PDM_ZIP_MAX_RATIO", "PDM_PATIENT_CODE_PATTERN"}
    assert required <= {s.key for s in SETTINGS}
    missing = sorted(name for name in required if f"`{name}" not in text)
    assert not missing, f"the checklist does not cover: {missing}"


def _nginx() -> str:
    return (ROOT / "deploy" / "nginx" / "pdm-records.conf").read_text()


def _gunicorn_config() -> dict[str, object]:
    spec = importlib.util.spec_from_file_location("gunicorn_conf", ROOT / "gunicorn.conf.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return vars(module)


def test_nginx_body_limit_equals_the_upload_limit() -> None:
    match = re.search(r"client_max_body_size\s+(\d+)m;", _nginx())
    assert match, "nginx config has no client_max_body_size"
    assert int(match.group(1)) == SETTINGS_BY_KEY["PDM_MAX_UPLOAD_MB"].default


def test_proxy_and_gunicorn_timeouts_agree() -> None:
    config = _gunicorn_config()
    nginx = _nginx()
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        match = re.search(rf"{directive}\s+(\d+)s;", nginx)
        assert match, directive
        assert int(match.group(1)) == config["timeout"], directive
    assert config["wsgi_app"] == "app:app"
    assert config["bind"] == ["127.0.0.1:8000"]  # loopback only: the proxy is the listener
    assert "proxy_pass http://pdm_records;" in nginx and "server 127.0.0.1:8000;" in nginx


def test_relative_links_point_at_files() -> None:
    broken = []
    for path in SECURITY_DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
            if "://" in target:
                continue
            resolved = (path.parent / target).resolve()
            relative = resolved.relative_to(ROOT).as_posix() if ROOT in resolved.parents \
                else str(resolved)
            if not resolved.exists() and relative not in FROM_OTHER_WORK:
                broken.append(f"{path.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_security_md_says_where_the_sbom_is_and_how_to_report() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    assert "pdm sbom" in text and "build/sbom.cdx.json" in text
    assert "Report a vulnerability" in text and "Supported versions" in text
    assert "pip-audit -r requirements.lock" in text
    for doc in ("deployment", "architecture", "roles-and-permissions",
                "configuration-checklist", "backup-and-restore", "updates", "threat-model",
                "supply-chain"):
        assert (ROOT / "docs" / "security" / f"{doc}.md").is_file(), doc
        assert f"docs/security/{doc}.md" in text, f"SECURITY.md does not link {doc}.md"
