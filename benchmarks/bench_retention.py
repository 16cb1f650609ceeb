"""Benchmark: the cost of retention operations per object on a real S3 Object Lock server.

    . /work/s3shared.env   # or: eval "$(scripts/s3-test-server start)"
    .venv/bin/python benchmarks/bench_retention.py [--objects 50]

Puts ``--objects`` small COMPLIANCE-locked objects (60 s) in a new bucket, then measures what
``services.retention`` does per object when an event moves a case's deadline (``head`` then
``extend_retention``), placing and releasing a legal hold, and the ``head`` the case page uses
for its lock state. The last line printed is exactly:
``put_ms=<a> extend_ms=<b> hold_on_ms=<c> hold_off_ms=<d> head_ms=<e>`` (medians per object).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pdm_records.storage.s3 import S3ObjectLockStore, build_client, create_bucket


def _median_ms(action: Callable[[str], None], keys: list[str]) -> float:
    times = []
    for key in keys:
        start = time.perf_counter()
        action(key)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=50)
    args = parser.parse_args()
    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL") or os.environ.get("PDM_S3_ENDPOINT_URL")
    if not endpoint:
        print("set PDM_TEST_S3_ENDPOINT_URL (the Object Lock test server)", file=sys.stderr)
        return 2
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    bucket = f"pdm-bench-{uuid.uuid4().hex[:12]}"
    create_bucket(build_client(endpoint, region), bucket, region)
    store = S3ObjectLockStore(bucket=bucket, endpoint_url=endpoint, region=region,
                              lock_mode="COMPLIANCE")
    body = b'{"record": "benchmark"}' * 40
    sha = hashlib.sha256(body).hexdigest()
    versions: dict[str, str | None] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "record.json"
        path.write_bytes(body)
        until = datetime.now(UTC) + timedelta(seconds=60)

        def put(key: str) -> None:
            versions[key] = store.put(key, path, sha256=sha, size=len(body),
                                      media_type="application/json",
                                      retain_until=until).version_id

        keys = [f"records/BENCH/{n:05d}.json" for n in range(args.objects)]
        put_ms = _median_ms(put, keys)
    later = datetime.now(UTC) + timedelta(seconds=120)

    def extend(key: str) -> None:
        info = store.head(key, version_id=versions[key])
        if info.retain_until is None or info.retain_until < later:
            store.extend_retention(key, version_id=versions[key], retain_until=later)

    extend_ms = _median_ms(extend, keys)
    hold_on = _median_ms(lambda k: store.set_legal_hold(k, version_id=versions[k], on=True), keys)
    hold_off = _median_ms(lambda k: store.set_legal_hold(k, version_id=versions[k], on=False),
                          keys)
    def head(key: str) -> None:
        store.head(key, version_id=versions[key])

    head_ms = _median_ms(head, keys)
    print(f"{args.objects} objects in bucket {bucket} at {endpoint}")
    print(f"put_ms={put_ms:.1f} extend_ms={extend_ms:.1f} hold_on_ms={hold_on:.1f} "
          f"hold_off_ms={hold_off:.1f} head_ms={head_ms:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
