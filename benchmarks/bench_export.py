"""Audit package export: throughput and peak memory for a case with ~1 GB of attachments.

Seeds (not timed) a case on the embedded default (SQLite + local write-once store) with N MiB of
generated attachments (default 1024, in 128 MiB files of random bytes, so nothing compresses),
then runs ``pdm export-case`` in a fresh process and measures its wall time and peak RSS
(``ru_maxrss`` of the child), and finally verifies the package with the offline verifier in
another fresh process. The export must stay at constant memory: peak RSS far below the package.

Last line: ``export_mb=<n> export_s=<x> export_mb_per_s=<y> peak_rss_mb=<z>``.

Run: .venv/bin/python benchmarks/bench_export.py [MIB]
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FILE_MIB = 128


def seed(instance: Path, total_mib: int) -> str:
    """A case with ``total_mib`` MiB of attachments; returns its number."""
    from flask_migrate import upgrade

    from pdm_records import create_app
    from pdm_records.clock import utcnow
    from pdm_records.extensions import db
    from pdm_records.models import Attachment, AttachmentKind, DeviceType, FileState, StoredFile
    from pdm_records.retention import retention_floor
    from pdm_records.services import requests as svc
    from pdm_records.services.demo import load_demo
    from pdm_records.services.users import find_user_by_email

    app = create_app()
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        load_demo(db.session, password="bench passphrase 1")  # noqa: S106 - throwaway bench db
        db.session.commit()
        clinician = find_user_by_email(db.session, "clinician@example.org")
        assert clinician is not None
        device = db.session.query(DeviceType).filter(DeviceType.implantable.is_(True)).first()
        assert device is not None
        case = svc.create_case(db.session, actor=clinician, pattern=r"^[A-Z0-9-]{4,32}$", data={
            "patient_code": "BENCH-0001", "device_type_id": device.id,
            "anatomical_site": "left orbital floor", "side": "left",
            "intended_use": "reconstruction", "clinical_indication": "fracture",
            "needed_by": "2030-01-15", "imaging_modality": "CT", "imaging_date": "2026-11-01",
            "slice_thickness_mm": 0.625, "processing_applied": "none"})
        db.session.commit()
        store = app.extensions["pdm_store_factory"]()
        revision = case.revisions[0]
        remaining = total_mib
        index = 0
        while remaining > 0:
            mib = min(FILE_MIB, remaining)
            remaining -= mib
            index += 1
            source = instance / f"scan-{index}.bin"
            digest = hashlib.sha256()
            with source.open("wb") as handle:
                for _ in range(mib):
                    chunk = os.urandom(1 << 20)
                    digest.update(chunk)
                    handle.write(chunk)
            key = f"cases/{case.number}/bench/scan-{index}.bin"
            retain = retention_floor(implantable=True, start=utcnow())
            info = store.put(key, source, sha256=digest.hexdigest(), size=mib << 20,
                             media_type="application/octet-stream", retain_until=retain)
            source.unlink()
            stored = StoredFile(case_id=case.id, backend=store.name, key=key,
                                version_id=info.version_id, sha256=digest.hexdigest(),
                                size=mib << 20, media_type="application/octet-stream",
                                original_name=f"scan-{index}.bin", state=FileState.DRAFT,
                                retain_until=retain, created_by_id=clinician.id)
            db.session.add(stored)
            db.session.flush()
            db.session.add(Attachment(revision_id=revision.id, file_id=stored.id,
                                      kind=AttachmentKind.IMAGING, created_by_id=clinician.id))
        db.session.commit()
        return case.number


def main() -> None:
    total_mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory(prefix="pdm-bench-export-") as tmp:
        instance = Path(tmp) / "instance"
        instance.mkdir()
        os.environ["PDM_INSTANCE_PATH"] = str(instance)
        number = seed(instance, total_mib)
        out = Path(tmp) / "package.zip"
        env = {**os.environ, "PDM_INSTANCE_PATH": str(instance)}
        t0 = time.perf_counter()
        ran = subprocess.run([sys.executable, "-m", "flask", "--app", str(ROOT / "app.py"), "pdm",
                              "export-case", number, "--output", str(out)], env=env, cwd=ROOT,
                             capture_output=True, text=True, check=False)
        export_s = time.perf_counter() - t0
        if ran.returncode != 0:
            sys.exit(f"export failed:\n{ran.stdout}\n{ran.stderr}")
        peak_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size_mb = out.stat().st_size / 2**20
        print(ran.stdout.strip())
        t0 = time.perf_counter()
        checked = subprocess.run([sys.executable, "-m", "pdm_records.verify_package", str(out)],
                                 cwd=ROOT, capture_output=True, text=True, check=False)
        verify_s = time.perf_counter() - t0
        print(checked.stdout.strip().splitlines()[-1], f"(verified in {verify_s:.1f} s)")
        if checked.returncode != 0:
            sys.exit(checked.stdout)
        print(f"export_mb={size_mb:.0f} export_s={export_s:.1f} "
              f"export_mb_per_s={size_mb / export_s:.1f} peak_rss_mb={peak_rss_mb:.0f}")


if __name__ == "__main__":
    main()
