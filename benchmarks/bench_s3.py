"""Benchmark: S3ObjectLockStore.put of a 100 MB object (multipart, COMPLIANCE lock) and head.

    eval "$(scripts/s3-test-server start)"
    .venv/bin/python benchmarks/bench_s3.py [--reps 3] [--mb 100]

Endpoint: ``PDM_TEST_S3_ENDPOINT_URL``, else ``PDM_S3_ENDPOINT_URL``; credentials from the standard
AWS chain. Without an endpoint it prints a message and exits 0 (skipped). Each repetition puts a
new key into one new Object Lock bucket (COMPLIANCE, retain 60 s: the data stays until then),
timing the whole ``put`` (local SHA-256/MD5 hashing, existence check, multipart upload,
retention/ETag read-back). ``head`` is timed over 20 calls. Medians are reported.

The last line printed is exactly:
``s3_put_100mb_s=<seconds> s3_mb_per_s=<MB/s> s3_head_ms=<ms>``
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pdm_records.storage.s3 import S3ObjectLockStore, build_client, create_bucket  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mb", type=int, default=100, help="object size in MB (10^6 bytes)")
    args = parser.parse_args()

    endpoint = os.environ.get("PDM_TEST_S3_ENDPOINT_URL") or os.environ.get("PDM_S3_ENDPOINT_URL")
    if not endpoint:
        print(
            "bench_s3: skipped: no S3 endpoint configured (set PDM_TEST_S3_ENDPOINT_URL, e.g. "
            'after `eval "$(scripts/s3-test-server start)"`)'
        )
        return 0
    region = os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    client = build_client(endpoint, region)
    bucket = f"pdm-bench-{uuid.uuid4().hex[:12]}"
    create_bucket(client, bucket, region)
    store = S3ObjectLockStore(bucket, endpoint, region, "COMPLIANCE", None, client)

    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "payload.bin"
        digest = hashlib.sha256()
        with path.open("wb") as fh:
            remaining = size
            while remaining:
                block = os.urandom(min(remaining, 1 << 20))
                digest.update(block)
                fh.write(block)
                remaining -= len(block)
        sha = digest.hexdigest()

        put_times: list[float] = []
        key = ""
        for rep in range(args.reps):
            key = f"bench/{uuid.uuid4().hex}/payload.bin"
            t0 = time.perf_counter()
            info = store.put(
                key,
                path,
                sha256=sha,
                size=size,
                media_type="application/octet-stream",
                retain_until=datetime.now(UTC) + timedelta(seconds=60),
            )
            put_times.append(time.perf_counter() - t0)
            print(
                f"put {rep + 1}: {put_times[-1]:.3f} s ({size / 1e6 / put_times[-1]:.1f} MB/s), "
                f"version {info.version_id}, lock {info.lock_mode} until {info.retain_until}",
                flush=True,
            )

    head_times: list[float] = []
    for _ in range(20):
        t0 = time.perf_counter()
        store.head(key)
        head_times.append(time.perf_counter() - t0)

    put_s = statistics.median(put_times)
    head_ms = statistics.median(head_times) * 1000
    print(f"endpoint {endpoint}, bucket {bucket}, {args.mb} MB, {args.reps} reps (median)")
    mb_per_s = size / 1e6 / put_s
    print(f"s3_put_100mb_s={put_s:.3f} s3_mb_per_s={mb_per_s:.1f} s3_head_ms={head_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
