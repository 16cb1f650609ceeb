"""The 3D preview routes: made by the verification job, rebuilt on demand, shown to whoever may
see the case (clinicians their cases, engineers, quality) and to nobody else."""

from __future__ import annotations

import io
import re

import numpy as np
import sqlalchemy as sa
import trimesh
from flask import Flask
from flask.testing import FlaskClient

from pdm_records.extensions import db
from pdm_records.geometry.preview import PREVIEW_FORMAT
from pdm_records.models import DesignPreview, Job
from tests.conftest import Accounts, table_counts
from tests.viewer_support import case_with_iteration, hollow_box, stl

MESH = stl(*hollow_box(n=2))  # 96 faces; walls 1, 3 and 5 mm; the envelope minimum is 1 mm


def _signed_in(app: Flask, accounts: Accounts, *roles: str) -> FlaskClient:
    client = app.test_client()
    accounts.login(client, *roles)
    return client


def _urls(case_id: int, number: int = 1) -> dict[str, str]:
    base = f"/cases/{case_id}/iterations/{number}"
    return {"page": base, "glb": base + "/preview.glb", "legend": base + "/preview.json"}


def test_the_verification_job_makes_the_preview_and_every_case_role_gets_it(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = case_with_iteration(app, accounts, catalogue, MESH)
    with app.app_context():
        job = db.session.scalars(sa.select(Job)).one()
        assert job.result is not None and job.result["preview"] is True
        stored = db.session.scalars(sa.select(DesignPreview)).one()
        assert stored.format == PREVIEW_FORMAT
        stored_glb = stored.glb
    urls = _urls(case["id"])
    for role in ("clinician", "engineer", "quality"):
        client = _signed_in(app, accounts, role)
        glb = client.get(urls["glb"])
        assert glb.status_code == 200, (role, glb.status_code)
        assert glb.mimetype == "model/gltf-binary"
        assert glb.data == stored_glb and glb.data[:4] == b"glTF"
        assert glb.data != MESH  # the browser never gets the upload
        assert glb.headers["Cache-Control"] == "no-store"
        legend = client.get(urls["legend"])
        assert legend.status_code == 200 and legend.is_json
    body = legend.get_json()
    assert body["case_number"] == case["number"] and body["iteration"] == 1
    assert body["scale"]["envelope_min"] == 1.0
    assert body["report"]["passed"] is True and body["report"]["intact"] is True
    assert body["report"]["thickness"]["min"] < 1.01
    assert body["markers"][0]["kind"] == "thinnest_wall"
    assert body["markers"][0]["severity"] == "info"  # 1 mm meets the 1 mm minimum
    assert body["glb_sha256"] and body["faces"] == 96
    scene = trimesh.load(io.BytesIO(glb.data), file_type="glb", process=False)
    assert len(scene.geometry["design"].faces) == 96


def test_nobody_else_sees_the_preview(app: Flask, accounts: Accounts,
                                      catalogue: dict[str, int]) -> None:
    case = case_with_iteration(app, accounts, catalogue, MESH)
    urls = _urls(case["id"])
    other_clinician = app.test_client()
    accounts.user("clinician", email="other.clinician@example.org")
    from tests.conftest import PASSWORD, csrf_token

    response = other_clinician.post("/login", data={
        "email": "other.clinician@example.org", "password": PASSWORD,
        "csrf_token": csrf_token(other_clinician, "/login")})
    assert response.status_code == 302
    for url in urls.values():
        assert other_clinician.get(url).status_code == 404  # not theirs: no existence leak
    admin = _signed_in(app, accounts, "admin")
    anonymous = app.test_client()
    for url in urls.values():
        assert admin.get(url).status_code == 403
        refused = anonymous.get(url)
        assert refused.status_code == 302 and "/login" in refused.headers["Location"]


def test_unknown_and_unverified_iterations_are_404(app: Flask, accounts: Accounts,
                                                   catalogue: dict[str, int]) -> None:
    case = case_with_iteration(app, accounts, catalogue, MESH, run_worker=False)
    engineer = _signed_in(app, accounts, "engineer")
    for url in _urls(case["id"], 9).values():
        assert engineer.get(url).status_code == 404
    unverified = _urls(case["id"], 1)
    for key in ("glb", "legend"):
        response = engineer.get(unverified[key])
        assert response.status_code == 404
        assert "has not been verified yet" in response.get_data(as_text=True)
    page = engineer.get(unverified["page"]).get_data(as_text=True)
    assert "has not been verified yet" in page and "data-pdm-viewer" not in page
    assert engineer.get("/cases/999999/iterations/1/preview.glb").status_code == 404


def test_a_missing_or_outdated_preview_is_rebuilt_on_demand(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = case_with_iteration(app, accounts, catalogue, MESH)
    urls = _urls(case["id"])
    with app.app_context():
        original = db.session.scalars(sa.select(DesignPreview)).one().glb_sha256
        db.session.execute(sa.delete(DesignPreview))  # verified before previews existed
        db.session.commit()
    before = table_counts(app)
    clinician = _signed_in(app, accounts, "clinician")
    assert clinician.get(urls["legend"]).get_json()["glb_sha256"] == original
    after = table_counts(app)
    changed = {t for t in after if after[t] != before[t]}
    # Only the cache row (and the sign-in's own bookkeeping, if any): no record, no audit.
    assert "design_preview" in changed and "audit_event" not in changed
    assert not changed - {"design_preview", "user"}
    with app.app_context():
        row = db.session.scalars(sa.select(DesignPreview)).one()
        assert row.glb_sha256 == original
        row.format = "pdm-preview/0"  # made by an older version of the builder
        db.session.commit()
    assert clinician.get(urls["glb"]).status_code == 200
    with app.app_context():
        rows = db.session.scalars(sa.select(DesignPreview)).all()
        assert [r.format for r in rows] == [PREVIEW_FORMAT]


def test_the_pages_load_the_viewer_module_without_inline_script(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    case = case_with_iteration(app, accounts, catalogue, MESH)
    clinician = _signed_in(app, accounts, "clinician")
    for url in (_urls(case["id"])["page"], f"/cases/{case['id']}"):
        response = clinician.get(url)
        html = response.get_data(as_text=True)
        assert response.status_code == 200
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, flags=re.S)
        assert scripts == [""]  # one script element, and it is empty (no inline code)
        assert '<script type="module" src="/static/viewer/viewer.js"></script>' in html
        assert f'data-glb-url="/cases/{case["id"]}/iterations/1/preview.glb"' in html
        assert f'data-legend-url="/cases/{case["id"]}/iterations/1/preview.json"' in html
    bundle = clinician.get("/static/viewer/viewer.js")
    assert bundle.status_code == 200 and "javascript" in bundle.mimetype
    bundle.close()


def test_a_failing_design_marks_its_thinnest_wall_as_a_failed_check(
        app: Flask, accounts: Accounts, catalogue: dict[str, int]) -> None:
    from tests.viewer_support import ENVELOPE

    envelope = {**ENVELOPE, "min_wall_thickness": 2.0}
    case = case_with_iteration(app, accounts, catalogue, MESH, envelope=envelope)
    body = _signed_in(app, accounts, "engineer").get(_urls(case["id"])["legend"]).get_json()
    assert body["report"]["passed"] is False
    assert body["report"]["failed_checks"] == ["min_wall_thickness"]
    (marker,) = body["markers"]
    assert marker["severity"] == "fail" and marker["check"] == "min_wall_thickness"
    classes = {c["key"]: c for c in body["scale"]["classes"]}
    assert classes["below_min"]["faces"] > 0
    assert np.isclose(classes["below_min"]["upper"], 2.0)
