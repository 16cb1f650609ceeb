"""Meshes with known wall thicknesses and a verified case, for the 3D preview tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Flask

from pdm_records.extensions import db
from pdm_records.models import User
from pdm_records.services.users import create_token
from tests.conftest import PASSWORD, Accounts
from tests.meshes import binary_stl
from tests.requests_support import PATIENT_MATCHED, attach, bearer, common, create


def unit_cube_surface(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The surface of [0, 1]^3, each side split into n x n squares (two triangles each),
    wound outward. Shared edges use the same coordinates, so they weld exactly."""
    t = np.linspace(0.0, 1.0, n + 1)
    vertices: list[np.ndarray] = []
    faces: list[np.ndarray] = []
    offset = 0
    for a in range(3):
        b, c = (a + 1) % 3, (a + 2) % 3
        for side in (0.0, 1.0):
            grid = np.zeros((n + 1, n + 1, 3))
            grid[..., a] = side
            grid[..., b] = t[:, None]
            grid[..., c] = t[None, :]
            idx = np.arange((n + 1) ** 2).reshape(n + 1, n + 1) + offset
            q00, q10 = idx[:-1, :-1].ravel(), idx[1:, :-1].ravel()
            q11, q01 = idx[1:, 1:].ravel(), idx[:-1, 1:].ravel()
            tris = np.vstack([np.stack([q00, q10, q11], 1), np.stack([q00, q11, q01], 1)])
            if side == 0.0:  # e_b x e_c = +e_a: reverse the side facing -a
                tris = tris[:, ::-1]
            vertices.append(grid.reshape(-1, 3))
            faces.append(tris)
            offset += (n + 1) ** 2
    return np.vstack(vertices), np.vstack(faces)


def hollow_box(outer: float = 40.0, cavity_lo: tuple[float, float, float] = (1.0, 3.0, 3.0),
               cavity_hi: tuple[float, float, float] = (35.0, 37.0, 37.0),
               n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A box [0, outer]^3 with a closed cavity: walls of cavity_lo on the low sides and
    outer - cavity_hi on the high sides (defaults: x- 1 mm, x+ 5 mm, y and z 3 mm)."""
    v, f = unit_cube_surface(n)
    lo, hi = np.array(cavity_lo), np.array(cavity_hi)
    vertices = np.vstack([v * outer, lo + v * (hi - lo)])
    faces = np.vstack([f, f[:, ::-1] + len(v)])
    return vertices, faces


def graded_plate(plate_radius: float = 40.0, radius: float = 65.0, thin: float = 0.7,
                 thick: float = 3.5, rings: int = 28, sectors: int = 128,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """A round curved plate (a cap of a spherical shell, like a cranial implant) whose wall,
    measured along the sphere's radius, is ``thick`` mm at the centre and thins towards the
    rim: thick - (thick - thin) * (r / plate_radius)^2, so ``thin`` mm at the edge and under
    1 mm (the demo envelope's minimum) in the outer ~5 %. Closed, wound outward."""
    r = np.linspace(0.0, plate_radius, rings + 1)[1:]
    theta = np.linspace(0.0, 2 * np.pi, sectors, endpoint=False)
    x = np.concatenate([[0.0], (r[:, None] * np.cos(theta)[None, :]).ravel()])
    y = np.concatenate([[0.0], (r[:, None] * np.sin(theta)[None, :]).ravel()])
    z = np.sqrt(radius**2 - x**2 - y**2)
    d = np.stack([x, y, z], -1) / radius
    wall = thick - (thick - thin) * (x**2 + y**2) / plate_radius**2
    count = len(x)
    vertices = np.vstack([d * radius, d * (radius - wall)[:, None]])
    vertices[:, 2] -= radius - 20.0
    ring = np.arange(rings * sectors).reshape(rings, sectors) + 1
    nxt = np.roll(ring, -1, axis=1)
    fan = np.stack([np.zeros(sectors, np.int64), ring[0], nxt[0]], 1)
    quads = np.vstack([np.stack([ring[:-1].ravel(), ring[1:].ravel(), nxt[1:].ravel()], 1),
                       np.stack([ring[:-1].ravel(), nxt[1:].ravel(), nxt[:-1].ravel()], 1)])
    top = np.vstack([fan, quads])  # counter-clockwise seen from +z: outward on the top
    edge, edge_next = ring[-1], nxt[-1]
    side = np.vstack([np.stack([edge, edge + count, edge_next + count], 1),
                      np.stack([edge, edge_next + count, edge_next], 1)])
    faces = np.vstack([top, top[:, ::-1] + count, side])
    tri = vertices[faces]
    volume = np.einsum("ij,ij->", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    if volume < 0:
        faces = faces[:, ::-1]
    return vertices, faces


def stl(vertices: np.ndarray, faces: np.ndarray) -> bytes:
    return binary_stl(vertices, faces, scale=1.0)


# -- a case with a verified design iteration -------------------------------------------------

ENVELOPE = {"max_diameter": 200.0, "min_wall_thickness": 1.0, "max_wall_thickness": 50.0,
            "watertight_required": True, "max_bodies": 2, "no_self_intersections": True,
            "parameters": {"wall_thickness": {"unit": "mm", "min": 1.0, "max": 10.0,
                                              "patient_adjustable": True}}}


def approve_envelope(app: Flask, accounts: Accounts, device_type_id: int,
                     definition: dict[str, Any]) -> None:
    client = app.test_client()
    draft = client.post("/api/v1/envelopes", headers=bearer(accounts.token("quality")), json={
        "device_type_id": device_type_id, "definition": definition})
    assert draft.status_code == 201, draft.get_json()
    approver = accounts.user("quality", email="quality.viewer@example.org")
    with app.app_context():
        user = db.session.get(User, approver.id)
        assert user is not None
        _, token = create_token(db.session, actor=None, user=user, name="t", expiry_days=1)
        db.session.commit()
    approved = client.post(f"/api/v1/envelopes/{draft.get_json()['id']}/approve",
                           headers=bearer(token),
                           json={"password": PASSWORD, "totp_code": accounts.code(approver)})
    assert approved.status_code == 200, approved.get_json()


_BOUNDARY = "pdm-viewer-test-boundary"


def _multipart(data: bytes, filename: str) -> bytes:
    """The upload form as raw bytes: werkzeug's test client spools a multipart body over
    500 KB into a temporary file it never closes (a ResourceWarning, an error here)."""
    head = (f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="units"\r\n\r\nmm\r\n'
            f'--{_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n')
    return head.encode() + data + f"\r\n--{_BOUNDARY}--\r\n".encode()


def case_with_iteration(app: Flask, accounts: Accounts, catalogue: dict[str, int],
                        mesh: bytes, *, envelope: dict[str, Any] | None = None,
                        run_worker: bool = True) -> dict[str, Any]:
    """A patient-matched case in design with one uploaded iteration, verified by the worker
    (unless ``run_worker`` is False). Returns ids and tokens."""
    approve_envelope(app, accounts, catalogue["implant"], envelope or ENVELOPE)
    clinician, engineer = accounts.token("clinician"), accounts.token("engineer")
    case = create(app, clinician, {**common(catalogue, "implant"), **PATIENT_MATCHED})
    client = app.test_client()
    attach(app, clinician, case["id"], binary_stl(), "ct-model.stl")
    assert client.post(f"/api/v1/cases/{case['id']}/submit", json={"password": PASSWORD},
                       headers=bearer(clinician)).status_code == 200
    assert client.post(f"/api/v1/cases/{case['id']}/transitions", json={"to": "accepted"},
                       headers=bearer(engineer)).status_code == 200
    uploaded = client.post(f"/api/v1/cases/{case['id']}/iterations", headers=bearer(engineer),
                           data=_multipart(mesh, "design.stl"),
                           content_type=f"multipart/form-data; boundary={_BOUNDARY}")
    assert uploaded.status_code == 201, uploaded.get_json()
    if run_worker:
        queued = client.post(f"/api/v1/cases/{case['id']}/iterations/1/verify",
                             headers=bearer(engineer))
        assert queued.status_code == 202, queued.get_json()
        ran = app.test_cli_runner().invoke(args=["pdm", "worker", "--once"])
        assert ran.exit_code == 0 and "succeeded" in ran.output, ran.output
    return {"id": case["id"], "number": case["number"], "clinician": clinician,
            "engineer": engineer}
