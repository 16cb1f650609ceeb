"""Benchmark: ``pdm verify-storage`` time per 1,000 objects, on the local store and on S3.

    .venv/bin/python benchmarks/bench_verify_storage.py [--objects 1000] [--kb 64]
    PDM_S3_ENDPOINT_URL=http://127.0.0.1:7480 .venv/bin/python benchmarks/bench_verify_storage.py

For each backend: a fresh SQLite database migrated to head, N objects of ``--kb`` KiB put through
the store (random bytes; on S3 into a new Object Lock bucket, COMPLIANCE, retained 300 s), one
``stored_file`` row each; then the real ``pdm verify-storage --json`` command is timed end to end
(store check, every row: head, full read-back with SHA-256, lock and hold comparison). S3 runs only
when ``PDM_S3_ENDPOINT_URL`` (or ``PDM_TEST_S3_ENDPOINT_URL``) is set; credentials come from the
standard AWS chain.

The last line printed is exactly:
``verify_storage_local_s_per_1000=<s> [verify_storage_s3_s_per_1000=<s>] objects=<N> kb=<KiB>``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm_records import create_app  # noqa: E402
from pdm_records.extensions import db  # noqa: E402
from pdm_records.models import FileState, StoredFile  # noqa: E402


def _bench(name: str, config: dict[str, Any], objects: int, kb: int, tmp: Path) -> float:
    from flask_migrate import upgrade

    os.environ["PDM_INSTANCE_PATH"] = str(tmp / f"instance-{name}")
    url = f"sqlite:///{tmp / f'{name}.sqlite3'}"
    app = create_app({"PDM_DATABASE_URL": url, "SQLALCHEMY_DATABASE_URI": url,
                      "PDM_STORAGE_PATH": str(tmp / f"objects-{name}"),
                      "SECRET_KEY": "bench-secret-" + "x" * 40, **config})
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        store = app.extensions["pdm_store_factory"]()
        source = tmp / f"source-{name}.bin"
        t0 = time.perf_counter()
        for i in range(objects):
            retain = datetime.now(UTC) + timedelta(seconds=300)
            data = os.urandom(kb * 1024)
            source.write_bytes(data)
            sha = hashlib.sha256(data).hexdigest()
            key = f"bench/{uuid.uuid4().hex}/object-{i}.bin"
            info = store.put(key, source, sha256=sha, size=len(data),
                             media_type="application/octet-stream", retain_until=retain)
            db.session.add(StoredFile(
                backend=store.name, key=key, version_id=info.version_id, sha256=sha,
                size=len(data), media_type="application/octet-stream",
                original_name=f"object-{i}.bin", state=FileState.RECORD, retain_until=retain))
        db.session.commit()
        print(f"{name}: created {objects} objects of {kb} KiB in "
              f"{time.perf_counter() - t0:.1f} s")
    runner = app.test_cli_runner()
    t0 = time.perf_counter()
    result = runner.invoke(args=["pdm", "verify-storage", "--json"])
    elapsed = time.perf_counter() - t0
    report = json.loads(result.stdout)
    if result.exit_code != 0 or report["checked"] != objects:
        raise SystemExit(f"{name}: verify-storage failed: {result.output[-2000:]}")
    per_1000 = elapsed * 1000 / objects
    print(f"{name}: verify-storage checked {report['checked']} objects in {elapsed:.2f} s "
          f"({per_1000:.2f} s per 1,000; {objects * kb / 1024 / elapsed:.1f} MiB/s read back)")
    return per_1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--kb", type=int, default=64, help="object size in KiB")
    args = parser.parse_args()
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        results["local"] = _bench("local", {"PDM_STORAGE_BACKEND": "local"}, args.objects,
                                  args.kb, tmp)
        endpoint = os.environ.get("PDM_S3_ENDPOINT_URL") or os.environ.get(
            "PDM_TEST_S3_ENDPOINT_URL")
        if endpoint:
            from pdm_records.storage.s3 import build_client, create_bucket

            region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
            bucket = f"pdm-bench-verify-{uuid.uuid4().hex[:10]}"
            create_bucket(build_client(endpoint, region), bucket, region)
            results["s3"] = _bench("s3", {
                "PDM_STORAGE_BACKEND": "s3", "PDM_S3_BUCKET": bucket,
                "PDM_S3_ENDPOINT_URL": endpoint, "PDM_S3_REGION": region,
                "PDM_S3_LOCK_MODE": "COMPLIANCE"}, args.objects, args.kb, tmp)
        else:
            print("s3: skipped (set PDM_S3_ENDPOINT_URL to measure a real Object Lock server)")
    print(" ".join(f"verify_storage_{name}_s_per_1000={value:.2f}"
                   for name, value in results.items())
          + f" objects={args.objects} kb={args.kb}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
