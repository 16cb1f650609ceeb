#!/usr/bin/env python3
"""Smoke check: does the S3 server at the test endpoint really enforce Object Lock (WORM)?

Run against the server started by ``scripts/s3-test-server start``:

    scripts/s3-test-server start
    .venv/bin/python scripts/s3_object_lock_smoke.py [--env .s3-test-server/env]

Reads endpoint and credentials from the env file written by ``s3-test-server`` (export lines),
falling back to the process environment for anything the file does not set.  Prints one line per
check and exits non-zero, with a message, on the first deviation from AWS S3 behaviour.

Every object it locks stays locked until its retain-until date (minutes at most): use a
throw-away server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENV_KEYS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "PDM_TEST_S3_ENDPOINT_URL",
)


class CheckFailed(Exception):
    pass


def read_env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].strip()
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip("'\"")
    return values


def md5_b64(data: bytes) -> str:
    # Content-MD5 is an integrity header S3 requires for locked puts, not a security hash.
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def ok(msg: str) -> None:
    print(f"PASS  {msg}", flush=True)


def expect_error(code: str | tuple[str, ...], what: str, fn, **kwargs) -> None:
    codes = (code,) if isinstance(code, str) else code
    try:
        fn(**kwargs)
    except ClientError as exc:
        got = exc.response.get("Error", {}).get("Code")
        if got in codes:
            ok(f"{what} -> refused ({got})")
            return
        raise CheckFailed(f"{what}: expected {'/'.join(codes)}, got {got}: {exc}") from exc
    raise CheckFailed(f"{what}: expected {'/'.join(codes)}, but the request SUCCEEDED")


def same_instant(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 1.0


def run(s3, bucket: str, expiry_wait: float) -> None:
    body = b"pdm-records object lock smoke test\n"

    # 1. bucket with Object Lock
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    ok(f"create_bucket({bucket}, ObjectLockEnabledForBucket=True)")
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise CheckFailed(f"versioning should be Enabled on a lock bucket, got {status!r}")
    ok("versioning is Enabled on the lock bucket")
    lock_cfg = s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
    if lock_cfg.get("ObjectLockEnabled") != "Enabled":
        raise CheckFailed(f"ObjectLockEnabled should be Enabled, got {lock_cfg!r}")
    ok("get_object_lock_configuration: ObjectLockEnabled=Enabled")

    # 2. COMPLIANCE put with Content-MD5
    key = "compliance/object.txt"
    until = utcnow() + timedelta(minutes=3)
    resp = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentMD5=md5_b64(body),
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=until,
    )
    vid = resp.get("VersionId")
    if not vid or vid == "null":
        raise CheckFailed(f"COMPLIANCE put returned no VersionId: {resp.get('VersionId')!r}")
    ok(f"put_object COMPLIANCE (+3 min, Content-MD5) -> VersionId {vid}")

    ret = s3.get_object_retention(Bucket=bucket, Key=key, VersionId=vid)["Retention"]
    if ret.get("Mode") != "COMPLIANCE" or not same_instant(ret["RetainUntilDate"], until):
        raise CheckFailed(f"get_object_retention: expected COMPLIANCE until {until}, got {ret!r}")
    ok(f"get_object_retention -> COMPLIANCE until {ret['RetainUntilDate'].isoformat()}")

    # 3. deleting the locked version is refused, with or without bypass
    expect_error(
        "AccessDenied",
        "delete_object(COMPLIANCE version)",
        s3.delete_object,
        Bucket=bucket,
        Key=key,
        VersionId=vid,
    )
    expect_error(
        "AccessDenied",
        "delete_object(COMPLIANCE version, BypassGovernanceRetention=True)",
        s3.delete_object,
        Bucket=bucket,
        Key=key,
        VersionId=vid,
        BypassGovernanceRetention=True,
    )

    # 4. shortening / downgrading refused, extending works
    expect_error(
        "AccessDenied",
        "put_object_retention(COMPLIANCE, shorter date)",
        s3.put_object_retention,
        Bucket=bucket,
        Key=key,
        VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until - timedelta(minutes=1)},
    )
    expect_error(
        "AccessDenied",
        "put_object_retention(downgrade COMPLIANCE -> GOVERNANCE)",
        s3.put_object_retention,
        Bucket=bucket,
        Key=key,
        VersionId=vid,
        Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until},
        BypassGovernanceRetention=True,
    )
    longer = until + timedelta(minutes=2)
    s3.put_object_retention(
        Bucket=bucket,
        Key=key,
        VersionId=vid,
        Retention={"Mode": "COMPLIANCE", "RetainUntilDate": longer},
    )
    ret = s3.get_object_retention(Bucket=bucket, Key=key, VersionId=vid)["Retention"]
    if ret.get("Mode") != "COMPLIANCE" or not same_instant(ret["RetainUntilDate"], longer):
        raise CheckFailed(f"after extending: expected COMPLIANCE until {longer}, got {ret!r}")
    ok(f"put_object_retention(COMPLIANCE, longer date) -> now until {longer.isoformat()}")

    # 5. delete without VersionId only adds a delete marker; the locked version survives
    resp = s3.delete_object(Bucket=bucket, Key=key)
    if not resp.get("DeleteMarker"):
        raise CheckFailed(f"delete without VersionId should add a delete marker, got {resp!r}")
    head = s3.head_object(Bucket=bucket, Key=key, VersionId=vid)
    if head.get("ObjectLockMode") != "COMPLIANCE":
        raise CheckFailed(f"locked version after delete marker: {head!r}")
    ok("delete_object without VersionId -> delete marker; locked version still readable")

    # 6. legal hold blocks a GOVERNANCE version delete even with bypass
    gkey = "governance/held.txt"
    resp = s3.put_object(
        Bucket=bucket,
        Key=gkey,
        Body=body,
        ContentMD5=md5_b64(body),
        ObjectLockMode="GOVERNANCE",
        ObjectLockRetainUntilDate=utcnow() + timedelta(minutes=5),
        ObjectLockLegalHoldStatus="ON",
    )
    gvid = resp["VersionId"]
    hold = s3.get_object_legal_hold(Bucket=bucket, Key=gkey, VersionId=gvid)["LegalHold"]
    if hold.get("Status") != "ON":
        raise CheckFailed(f"legal hold should be ON, got {hold!r}")
    ok(f"put_object GOVERNANCE + legal hold ON -> VersionId {gvid}")
    expect_error(
        "AccessDenied",
        "delete_object(GOVERNANCE + legal hold, BypassGovernanceRetention=True)",
        s3.delete_object,
        Bucket=bucket,
        Key=gkey,
        VersionId=gvid,
        BypassGovernanceRetention=True,
    )
    s3.put_object_legal_hold(Bucket=bucket, Key=gkey, VersionId=gvid, LegalHold={"Status": "OFF"})
    ok("put_object_legal_hold(OFF)")

    # 7. GOVERNANCE without hold: refused without bypass, deleted with bypass
    expect_error(
        "AccessDenied",
        "delete_object(GOVERNANCE, no bypass)",
        s3.delete_object,
        Bucket=bucket,
        Key=gkey,
        VersionId=gvid,
    )
    s3.delete_object(Bucket=bucket, Key=gkey, VersionId=gvid, BypassGovernanceRetention=True)
    versions = s3.list_object_versions(Bucket=bucket, Prefix=gkey).get("Versions", [])
    if any(v["VersionId"] == gvid for v in versions):
        raise CheckFailed("GOVERNANCE version still listed after delete with bypass")
    ok("delete_object(GOVERNANCE, BypassGovernanceRetention=True) -> deleted")

    # 8. a retain-until date in the past is refused
    expect_error(
        "InvalidArgument",
        "put_object with a past retain-until date",
        s3.put_object,
        Bucket=bucket,
        Key="compliance/past.txt",
        Body=body,
        ContentMD5=md5_b64(body),
        ObjectLockMode="COMPLIANCE",
        ObjectLockRetainUntilDate=utcnow() - timedelta(days=1),
    )

    # 9. a short COMPLIANCE lock really expires (server clock), then the version can be deleted
    if expiry_wait > 0:
        ekey = "compliance/short.txt"
        resp = s3.put_object(
            Bucket=bucket,
            Key=ekey,
            Body=body,
            ContentMD5=md5_b64(body),
            ObjectLockMode="COMPLIANCE",
            ObjectLockRetainUntilDate=utcnow() + timedelta(seconds=3),
        )
        evid = resp["VersionId"]
        expect_error(
            "AccessDenied",
            "delete_object(COMPLIANCE +3 s, immediately)",
            s3.delete_object,
            Bucket=bucket,
            Key=ekey,
            VersionId=evid,
        )
        deadline = time.monotonic() + expiry_wait
        while True:
            try:
                s3.delete_object(Bucket=bucket, Key=ekey, VersionId=evid)
                break
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "AccessDenied":
                    raise
                if time.monotonic() > deadline:
                    raise CheckFailed(
                        f"COMPLIANCE +3 s version still undeletable after {expiry_wait:.0f} s"
                    ) from exc
                time.sleep(0.5)
        ok("delete_object(COMPLIANCE +3 s) succeeds once the retention has expired")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--env",
        default=os.environ.get("S3_TEST_ENV_FILE", ".s3-test-server/env"),
        help="env file written by scripts/s3-test-server (default: %(default)s)",
    )
    parser.add_argument(
        "--expiry-wait",
        type=float,
        default=30.0,
        help="seconds to wait for a 3 s COMPLIANCE lock to expire; 0 skips that check",
    )
    args = parser.parse_args()

    env = {k: os.environ[k] for k in ENV_KEYS if k in os.environ}
    env_path = Path(args.env)
    if env_path.is_file():
        env.update(read_env_file(env_path))
    missing = [k for k in ENV_KEYS if not env.get(k)]
    if missing:
        print(
            f"FAIL  no endpoint/credentials: {', '.join(missing)} not set and "
            f"{env_path} not found (run scripts/s3-test-server start first)",
            file=sys.stderr,
        )
        return 2

    endpoint = env["PDM_TEST_S3_ENDPOINT_URL"]
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(
            request_checksum_calculation="when_required",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        ),
    )
    bucket = f"pdm-lock-smoke-{uuid.uuid4().hex[:12]}"
    print(f"INFO  endpoint {endpoint}, bucket {bucket}", flush=True)
    t0 = time.monotonic()
    try:
        run(s3, bucket, args.expiry_wait)
    except CheckFailed as exc:
        print(f"FAIL  {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"FAIL  unexpected S3 error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # connection refused, timeouts, ...
        print(f"FAIL  {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"OK    all Object Lock checks passed in {time.monotonic() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
