"""Time the clinician's path through the API on the embedded default (SQLite + local store).

Creates a patient-matched request, uploads binary STL attachments of growing size (streamed,
hashed, parsed, stored once), and signs and submits. Prints one line per step and, last:
``create_ms=<a> upload_10mb_ms=<b> upload_100mb_ms=<c> upload_mb_per_s=<d> sign_submit_ms=<e>``.

Run: .venv/bin/python benchmarks/bench_requests.py
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "benchmark passphrase 1"


def stl_of_size(megabytes: int) -> bytes:
    n = megabytes * 1024 * 1024 // 50
    rng = np.random.default_rng(0)
    records = np.zeros(n, dtype=[("normal", "<f4", (3,)), ("v", "<f4", (3, 3)),
                                 ("attr", "<u2")])
    records["v"] = rng.uniform(0, 100, size=(n, 3, 3)).astype("<f4")
    return b"pdm benchmark".ljust(80, b" ") + np.uint32(n).tobytes() + records.tobytes()


def main() -> None:
    from flask_migrate import upgrade

    from pdm_records import create_app
    from pdm_records.extensions import db
    from pdm_records.models import DeviceType, Site
    from pdm_records.services import users
    from pdm_records.services.demo import load_demo

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PDM_INSTANCE_PATH"] = tmp
        app = create_app({"PDM_MAX_UPLOAD_MB": 512})
        with app.app_context():
            upgrade(directory=str(ROOT / "migrations"))
            load_demo(db.session, password=PASSWORD)
            user = users.find_user_by_email(db.session, "clinician@example.org")
            assert user is not None
            _, token = users.create_token(db.session, actor=None, user=user, name="b",
                                          expiry_days=1)
            guide = db.session.query(DeviceType).filter(DeviceType.name.like("%guide%")).one()
            hospital = db.session.query(Site).filter(Site.name.like("%Hospital%")).one()
            db.session.commit()
            guide_id, hospital_id = guide.id, hospital.id
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        payload = {"patient_code": "PAT-0001", "device_type_id": guide_id,
                   "institution_id": hospital_id, "anatomical_site": "tibia", "side": "left",
                   "intended_use": "drilling guide", "clinical_indication": "osteotomy",
                   "needed_by": "2030-01-01", "imaging_modality": "CT",
                   "imaging_date": "2026-11-01", "slice_thickness_mm": 0.6}
        create_times, sign_times, upload = [], [], {}
        for size in (10, 100):
            data = stl_of_size(size)
            runs = []
            for _ in range(3):
                t0 = time.perf_counter()
                case = client.post("/api/v1/cases", json=payload, headers=headers).get_json()
                create_times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                response = client.post(
                    f"/api/v1/cases/{case['id']}/attachments", headers=headers,
                    data={"file": (io.BytesIO(data), "part.stl"), "kind": "model_3d"},
                    content_type="multipart/form-data")
                runs.append(time.perf_counter() - t0)
                assert response.status_code == 201, response.get_json()
                t0 = time.perf_counter()
                response = client.post(f"/api/v1/cases/{case['id']}/submit",
                                       json={"password": PASSWORD}, headers=headers)
                sign_times.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.get_json()
            upload[size] = statistics.median(runs)
            print(f"upload {size} MB binary STL: median {upload[size] * 1000:.0f} ms "
                  f"({size / upload[size]:.0f} MB/s) over {len(runs)} runs")
        create_ms = statistics.median(create_times) * 1000
        sign_ms = statistics.median(sign_times) * 1000
        print(f"create case: median {create_ms:.0f} ms; sign and submit: median {sign_ms:.0f} ms"
              " (includes argon2 password verification)")
        print(f"create_ms={create_ms:.0f} upload_10mb_ms={upload[10] * 1000:.0f} "
              f"upload_100mb_ms={upload[100] * 1000:.0f} "
              f"upload_mb_per_s={100 / upload[100]:.0f} sign_submit_ms={sign_ms:.0f}")


if __name__ == "__main__":
    main()
