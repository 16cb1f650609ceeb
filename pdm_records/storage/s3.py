"""An S3 Object Lock store: write-once objects whose retention the *server* enforces.

Contract (on top of :mod:`pdm_records.storage.base`, whose contract is binding):

- The bucket must have Object Lock enabled (which implies versioning). Every ``put`` creates
  exactly one locked version: ``ObjectLockMode`` (the store's ``lock_mode``, COMPLIANCE or
  GOVERNANCE), ``ObjectLockRetainUntilDate`` (UTC, rounded *up* to the whole second, because S3
  servers store seconds) and, when asked, ``ObjectLockLegalHoldStatus=ON``. The SHA-256 the caller
  gives is stored as user metadata ``x-amz-meta-sha256``.
- ``put`` refuses to overwrite: an existing key (any version, also one hidden under a delete
  marker) raises :class:`ObjectExists` (a versioned bucket would otherwise silently add a
  version). ``If-None-Match: *`` is sent as well, so servers that support conditional writes
  (AWS) also close the race between two concurrent puts; servers that ignore it (Ceph RGW 16)
  leave a small window, as any check-then-write does.
- After writing, ``put`` reads the retention back (``get_object_retention`` on the new version)
  and checks mode and retain-until. A server that accepted the lock headers but reports no (or a
  weaker) lock raises :class:`LockNotEnforced`. Nothing is cleaned up then: the version may be
  locked after all, and the operator must look at the bucket.
- Content integrity: ``Content-MD5`` on every request that carries data (whole object or each
  multipart part), size and ETag read back after the put, SHA-256 verified on every read.
- Objects larger than ``multipart_threshold`` go up in parts; the lock parameters travel on
  ``create_multipart_upload``; any failure aborts the upload (nothing half-stored remains).
  Ceph RGW 16.2 drops those lock parameters: the read-back sees it and applies the retention
  (and legal hold) to the new version explicitly, then reads it back again.
- ``delete`` removes one *version* (never a bare key, which would only add a delete marker). The
  application refuses first (legal hold, ``now`` before retain-until); the server refuses again
  when its own clock says the lock still holds. ``BypassGovernanceRetention`` is sent only when
  the store's ``lock_mode`` is GOVERNANCE *and* ``governance_bypass`` was configured
  (``PDM_S3_GOVERNANCE_BYPASS``, for staging clean-up); COMPLIANCE locks cannot be bypassed by
  anyone.
- ``extend_retention`` never weakens: a GOVERNANCE version in a store configured COMPLIANCE is
  upgraded to COMPLIANCE. S3 and RGW count any change of a GOVERNANCE retention as a bypass, so
  that one call carries ``BypassGovernanceRetention`` (the credentials need
  ``s3:BypassGovernanceRetention``); the new mode and date are never weaker than the old.
- ``quarantine`` tags an orphaned version (``pdm-quarantine``, ``pdm-found-at``) and extends its
  retention, so that an object nobody indexes is marked in the bucket itself.
- Every botocore/boto3 error is translated here into a :mod:`.base` exception: callers never
  import botocore. Unreachable server, timeouts, 5xx → :class:`StorageUnavailable`; missing key or
  version → :class:`ObjectNotFound`; ``AccessDenied`` on retention, hold or delete →
  :class:`RetentionViolation`.

Credentials come from the standard AWS chain (environment, shared files, instance roles) and are
never logged. No Flask imports here.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import math
import uuid
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..canonical import utc_iso
from .base import (
    ObjectCorrupted,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RetentionViolation,
    StorageError,
    StorageUnavailable,
    validate_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

CHUNK = 1024 * 1024
MIB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_PART_SIZE = 16 * MIB
DEFAULT_CONCURRENCY = 4  # parts in flight during a multipart upload (memory: 4 x part size)
MIN_PART_SIZE = 5 * MIB  # S3 minimum for every part but the last
MAX_PARTS = 10_000
LOCK_MODES = ("COMPLIANCE", "GOVERNANCE")
PROBE_PREFIX = "_probe/"
CREATE_BUCKET_HINT = (
    "create it with Object Lock enabled: `flask --app app pdm create-bucket` "
    "(or `aws s3api create-bucket --object-lock-enabled-for-bucket --bucket NAME`)"
)

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "405", "MethodNotAllowed"}
_UNAVAILABLE_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "Throttling",
    "ThrottlingException",
    "503",
    "500",
}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden"}


class LockNotEnforced(StorageError):
    """The server accepted an Object Lock request but does not report the lock afterwards.

    The store is not fit for records that must be kept: use a server that enforces Object Lock
    (AWS S3, Ceph RGW, MinIO, StorageGRID, Wasabi, Backblaze B2) and a bucket created with it.
    """


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as everywhere in the product (canonical.utc_iso)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ceil_second(moment: datetime) -> datetime:
    """``moment`` in UTC, rounded up to the whole second (S3 stores retain-until in seconds)."""
    moment = _aware(moment)
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(seconds=1)
    return moment


def _md5_b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def _tag_value(text: str) -> str:
    """``text`` cut down to the characters S3 allows in a tag value."""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-=._:/@")
    return "".join(c if c in allowed else "_" for c in text)[:256] or "quarantined"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "")


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def _describe(exc: ClientError) -> str:
    err = exc.response.get("Error", {})
    code = err.get("Code") or _status(exc)
    message = err.get("Message")
    return f"{code}: {message}" if message else str(code)


def build_client(endpoint_url: str | None, region: str | None) -> S3Client:
    """A boto3 S3 client with the settings this store relies on.

    Path-style addressing (works with any endpoint and bucket name), checksums only when an
    operation requires one (this store sends Content-MD5 itself), 3 attempts with standard
    back-off, 5 s to connect and 60 s per read. Credentials: the standard AWS chain.
    """
    config = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    # A session per client: boto3's default session is not safe to share across threads.
    session = boto3.session.Session()
    return session.client(
        "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
    )


def create_bucket(client: S3Client, bucket: str, region: str | None) -> None:
    """Create ``bucket`` with Object Lock enabled (which also turns versioning on).

    ``CreateBucketConfiguration`` is sent outside us-east-1 (AWS rejects it there). A bucket the
    caller already owns is not an error; run :meth:`S3ObjectLockStore.check` to see whether it
    has Object Lock. Raises :class:`StorageUnavailable` or :class:`StorageError`.
    """
    kwargs: dict[str, Any] = {"Bucket": bucket, "ObjectLockEnabledForBucket": True}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) == "BucketAlreadyOwnedByYou":
            return
        if _error_code(exc) == "BucketAlreadyExists":
            raise StorageError(
                f"bucket {bucket!r} already exists and belongs to someone else; choose another name"
            ) from exc
        _raise_translated(exc, f"create bucket {bucket!r}")
    except BotoCoreError as exc:
        _raise_translated(exc, f"create bucket {bucket!r}")


def _raise_translated(exc: Exception, what: str, *, retention_op: bool = False) -> NoReturn:
    """Raise the :mod:`.base` exception for a botocore error raised while doing ``what``."""
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        raise StorageUnavailable(
            f"cannot {what}: no S3 credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
            "AWS_PROFILE or an instance role)"
        ) from exc
    if isinstance(exc, (BotoConnectionError, HTTPClientError)):
        # EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError…
        raise StorageUnavailable(f"cannot {what}: S3 endpoint unreachable ({exc})") from exc
    if isinstance(exc, ClientError):
        code, status = _error_code(exc), _status(exc)
        detail = _describe(exc)
        if code == "NoSuchBucket":
            raise StorageUnavailable(
                f"cannot {what}: the bucket does not exist; {CREATE_BUCKET_HINT}"
            ) from exc
        if status >= 500 or code in _UNAVAILABLE_CODES:
            raise StorageUnavailable(f"cannot {what}: S3 server error ({detail})") from exc
        if code in _NOT_FOUND_CODES or status in (404, 405):
            raise ObjectNotFound(f"cannot {what}: no such object or version ({detail})") from exc
        if code == "PreconditionFailed" or status == 412:
            raise ObjectExists(
                f"cannot {what}: the object exists and cannot be overwritten"
            ) from exc
        if code in ("BadDigest", "InvalidDigest"):
            raise ObjectCorrupted(
                f"cannot {what}: the content changed while it was sent ({detail})"
            ) from exc
        if code in _DENIED_CODES or status == 403:
            if retention_op:
                raise RetentionViolation(
                    f"cannot {what}: the S3 server refused it (Object Lock retention or legal "
                    f"hold in force, or missing permission; {detail})"
                ) from exc
            raise StorageUnavailable(
                f"cannot {what}: access denied by the S3 server; check the credentials' "
                f"permissions on the bucket ({detail})"
            ) from exc
        if code == "InvalidArgument":
            raise StorageError(
                f"cannot {what}: the S3 server rejected an argument ({detail}); a retain-until "
                "date in the past (by the server's clock) is a common cause"
            ) from exc
        raise StorageError(f"cannot {what}: S3 error {detail}") from exc
    if isinstance(exc, BotoCoreError):
        raise StorageUnavailable(f"cannot {what}: {exc}") from exc
    raise StorageError(f"cannot {what}: {exc}") from exc


@contextlib.contextmanager
def _translated(what: str, *, retention_op: bool = False) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        _raise_translated(exc, what, retention_op=retention_op)


class S3ObjectLockStore(ObjectStore):
    """Write-once store on an S3 bucket with Object Lock (see the module docstring)."""

    name = "s3"

    def __init__(
        self,
        bucket: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        lock_mode: str = "COMPLIANCE",
        sse: str | None = None,
        client: S3Client | None = None,
        *,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        governance_bypass: bool = False,
    ) -> None:
        if not bucket:
            raise StorageError("the S3 store needs a bucket name (PDM_S3_BUCKET)")
        mode = (lock_mode or "").strip().upper()
        if mode not in LOCK_MODES:
            raise StorageError(
                f"S3 lock mode must be COMPLIANCE or GOVERNANCE, not {lock_mode!r} "
                "(PDM_S3_LOCK_MODE)"
            )
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region or None
        self.lock_mode = mode
        self.sse = sse or None
        self.governance_bypass = bool(governance_bypass) and mode == "GOVERNANCE"
        self.multipart_threshold = max(int(multipart_threshold), MIN_PART_SIZE)
        self.part_size = max(int(part_size), MIN_PART_SIZE)
        self.max_concurrency = max(int(max_concurrency), 1)
        self.client: S3Client = client if client is not None else build_client(
            self.endpoint_url, self.region
        )

    def __repr__(self) -> str:
        return (
            f"S3ObjectLockStore(bucket={self.bucket!r}, endpoint_url={self.endpoint_url!r}, "
            f"lock_mode={self.lock_mode!r})"
        )

    # -- helpers -------------------------------------------------------------------------
    def _version_kw(self, version_id: str | None) -> dict[str, Any]:
        return {"VersionId": version_id} if version_id else {}

    def _key_exists(self, key: str) -> bool:
        """True if any version or delete marker of ``key`` exists."""
        with _translated(f"check whether {key!r} exists"):
            try:
                self.client.head_object(Bucket=self.bucket, Key=key)
                return True
            except ClientError as exc:
                if _error_code(exc) not in _NOT_FOUND_CODES and _status(exc) != 404:
                    raise
            # The latest version may be a delete marker hiding locked versions (RGW does not say
            # so on HEAD): list the versions of exactly this key. Keys sort after their prefixes,
            # so the first entry under Prefix=key is this key's if it has any.
            resp = self.client.list_object_versions(Bucket=self.bucket, Prefix=key, MaxKeys=1)
        entries = list(resp.get("Versions", [])) + list(resp.get("DeleteMarkers", []))
        return any(entry.get("Key") == key for entry in entries)

    def _lock_kwargs(
        self, sha256: str, media_type: str, until: datetime, hold: bool
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "Bucket": self.bucket,
            "ContentType": media_type or "application/octet-stream",
            "Metadata": {"sha256": sha256},
            "ObjectLockMode": self.lock_mode,
            "ObjectLockRetainUntilDate": until,
        }
        if hold:
            kwargs["ObjectLockLegalHoldStatus"] = "ON"
        if self.sse:
            kwargs["ServerSideEncryption"] = self.sse
        return kwargs

    # -- put -----------------------------------------------------------------------------
    def put(
        self,
        key: str,
        source: Path,
        *,
        sha256: str,
        size: int,
        media_type: str,
        retain_until: datetime,
        legal_hold: bool = False,
    ) -> ObjectInfo:
        """Store ``source`` once under ``key``, locked until ``retain_until``; see module doc.

        Raises :class:`ObjectExists`, :class:`ObjectCorrupted` (the file does not match
        ``sha256``/``size``, or changed while sent), :class:`RetentionViolation` (retain-until
        not in the future), :class:`LockNotEnforced`, :class:`StorageUnavailable`.
        """
        validate_key(key)
        requested = _aware(retain_until)
        until = _ceil_second(requested)
        if until <= datetime.now(UTC):
            raise RetentionViolation(
                f"retain-until {utc_iso(requested)} for {key!r} is not in the future"
            )
        if self._key_exists(key):
            raise ObjectExists(f"object {key!r} exists and cannot be overwritten")
        kwargs = self._lock_kwargs(sha256, media_type, until, legal_hold)
        kwargs["Key"] = key
        multipart = size > self.multipart_threshold
        try:
            if multipart:
                version_id, etag = self._put_multipart(key, source, sha256, size, kwargs)
            else:
                version_id, etag = self._put_single(key, source, sha256, size, kwargs)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read {source} to store {key!r}: {exc}") from exc
        if not version_id or version_id == "null":
            raise LockNotEnforced(
                f"the S3 server stored {key!r} without a version id: bucket {self.bucket!r} has "
                "no versioning, so Object Lock cannot be in force; the object was NOT removed"
            )
        stored_until = self._verify_stored(
            key, version_id, until, legal_hold, size, etag, multipart=multipart
        )
        return ObjectInfo(key, version_id, size, sha256, stored_until, legal_hold, self.lock_mode)

    def _hash_file(self, source: Path, key: str, sha256: str, size: int) -> bytes:
        """Stream ``source`` once; check SHA-256 and size; return its MD5 digest."""
        md5 = hashlib.md5(usedforsecurity=False)
        digest = hashlib.sha256()
        total = 0
        with open(source, "rb") as src:
            while chunk := src.read(CHUNK):
                md5.update(chunk)
                digest.update(chunk)
                total += len(chunk)
        if digest.hexdigest() != sha256 or total != size:
            raise ObjectCorrupted(
                f"content of {key!r} does not match its SHA-256/size (changed before storing?)"
            )
        return md5.digest()

    def _put_single(
        self, key: str, source: Path, sha256: str, size: int, kwargs: dict[str, Any]
    ) -> tuple[str | None, str]:
        md5 = self._hash_file(source, key, sha256, size)
        # The body is read a second time while sending; Content-MD5 makes the server reject it
        # (BadDigest → ObjectCorrupted) if the file changed in between.
        with open(source, "rb") as body, _translated(f"store {key!r}"):
            resp = self.client.put_object(
                Body=body, ContentMD5=_md5_b64(md5), ContentLength=size, IfNoneMatch="*", **kwargs
            )
        return resp.get("VersionId"), md5.hex()

    def _part_size_for(self, size: int) -> int:
        return max(self.part_size, math.ceil(size / MAX_PARTS))

    def _upload_part(
        self, key: str, upload_id: str, number: int, data: bytes
    ) -> tuple[int, str, bytes]:
        """Upload one part with its Content-MD5; return (number, ETag, MD5 digest)."""
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        with _translated(f"upload part {number} of {key!r}"):
            resp = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentMD5=_md5_b64(md5),
            )
        return number, resp["ETag"], md5

    def _put_multipart(
        self, key: str, source: Path, sha256: str, size: int, kwargs: dict[str, Any]
    ) -> tuple[str | None, str]:
        """Upload in parts, at most ``max_concurrency`` in flight (memory: that many parts).

        The file is read once, in order, in this thread (SHA-256 and size are checked before
        completing); each part carries its Content-MD5. Any error aborts the upload.
        """
        with _translated(f"start a multipart upload of {key!r}"):
            upload_id = self.client.create_multipart_upload(**kwargs)["UploadId"]
        part_size = self._part_size_for(size)
        done_parts: list[tuple[int, str, bytes]] = []
        digest = hashlib.sha256()
        total = 0
        try:
            with open(source, "rb") as src, ThreadPoolExecutor(
                max_workers=self.max_concurrency, thread_name_prefix="pdm-s3-part"
            ) as pool:
                pending: set[Future[tuple[int, str, bytes]]] = set()
                number = 0
                while data := src.read(part_size):
                    number += 1
                    digest.update(data)
                    total += len(data)
                    if len(pending) >= self.max_concurrency:
                        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                        done_parts.extend(f.result() for f in finished)
                    pending.add(pool.submit(self._upload_part, key, upload_id, number, data))
                    del data
                done_parts.extend(f.result() for f in pending)
            if digest.hexdigest() != sha256 or total != size:
                raise ObjectCorrupted(
                    f"content of {key!r} does not match its SHA-256/size (changed while storing?)"
                )
            done_parts.sort()
            parts: Any = [{"ETag": etag, "PartNumber": n} for n, etag, _ in done_parts]
            with _translated(f"complete the multipart upload of {key!r}"):
                resp_c = self.client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                )
        except BaseException:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise
        etag = hashlib.md5(
            b"".join(md5 for _, _, md5 in done_parts), usedforsecurity=False
        ).hexdigest()
        return resp_c.get("VersionId"), f"{etag}-{len(done_parts)}"

    def _read_retention(self, key: str, version_id: str) -> tuple[str | None, datetime | None]:
        """(mode, retain-until) the server reports for one version; (None, None) if unlocked."""
        what = f"read back the retention of {key!r} version {version_id}"
        try:
            retention = self.client.get_object_retention(
                Bucket=self.bucket, Key=key, VersionId=version_id
            ).get("Retention", {})
        except ClientError as exc:
            if _error_code(exc) in (
                "ObjectLockConfigurationNotFoundError",
                "NoSuchObjectLockConfiguration",
                "InvalidRequest",
            ):
                return None, None
            _raise_translated(exc, what)
        except BotoCoreError as exc:
            _raise_translated(exc, what)
        stored = retention.get("RetainUntilDate")
        return retention.get("Mode"), _aware(stored) if stored is not None else None

    def _verify_stored(
        self,
        key: str,
        version_id: str,
        until: datetime,
        legal_hold: bool,
        size: int,
        etag: str,
        *,
        multipart: bool,
    ) -> datetime:
        """Read back the lock (and size/ETag) of the version just written; return retain-until.

        Multipart uploads: some servers (measured: Ceph RGW 16.2) accept the lock headers of
        ``CreateMultipartUpload`` and drop them. The lock (and legal hold) is then applied to the
        new version with ``PutObjectRetention``/``PutObjectLegalHold`` and read back again; until
        that call the version is unlocked (a window of one request, unless the bucket has a
        default retention). A server that still reports no lock raises :class:`LockNotEnforced`.
        """
        mode, stored = self._read_retention(key, version_id)
        weak = mode != self.lock_mode or stored is None or stored < until
        if weak and multipart and mode in (None, self.lock_mode):
            retention: Any = {"Mode": self.lock_mode, "RetainUntilDate": until}
            try:
                with _translated(f"apply the retention of {key!r}", retention_op=True):
                    self.client.put_object_retention(
                        Bucket=self.bucket, Key=key, VersionId=version_id, Retention=retention
                    )
            except StorageError as exc:
                raise LockNotEnforced(
                    f"the S3 server dropped the Object Lock of multipart upload {key!r} "
                    f"(version {version_id}) and applying it afterwards failed: {exc}; the "
                    "object is stored WITHOUT retention"
                ) from exc
            mode, stored = self._read_retention(key, version_id)
        if mode != self.lock_mode or stored is None or stored < until:
            raise LockNotEnforced(
                f"the S3 server accepted {key!r} (version {version_id}) with {self.lock_mode} "
                f"retention until {utc_iso(until)} but reports mode={mode!r}, "
                f"retain-until={utc_iso(stored) if stored else None}: this server or bucket does "
                "not enforce Object Lock; the object was NOT removed"
            )
        what = f"read back {key!r} version {version_id}"
        with _translated(what):
            head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        if legal_hold and head.get("ObjectLockLegalHoldStatus") != "ON" and multipart:
            with _translated(f"apply the legal hold of {key!r}", retention_op=True):
                self.client.put_object_legal_hold(
                    Bucket=self.bucket, Key=key, VersionId=version_id, LegalHold={"Status": "ON"}
                )
            with _translated(what):
                head = self.client.head_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        if legal_hold and head.get("ObjectLockLegalHoldStatus") != "ON":
            raise LockNotEnforced(
                f"the S3 server accepted a legal hold on {key!r} (version {version_id}) but "
                "does not report it"
            )
        stored_etag = str(head.get("ETag") or "").strip('"')
        etag_is_md5 = self.sse != "aws:kms" and "aws:kms" not in str(
            head.get("ServerSideEncryption") or ""
        )
        if head.get("ContentLength") != size or (
            etag_is_md5 and stored_etag and stored_etag != etag
        ):
            raise ObjectCorrupted(
                f"the S3 server stored {key!r} (version {version_id}) with size "
                f"{head.get('ContentLength')} and ETag {stored_etag}, expected {size} and {etag}"
            )
        return stored

    # -- read ----------------------------------------------------------------------------
    def copy_to(self, key: str, dest: BinaryIO, *, version_id: str | None, sha256: str) -> int:
        """Stream the object (1 MiB chunks) into ``dest``; verify SHA-256 at the end.

        ``dest`` has received the bytes when :class:`ObjectCorrupted` is raised: callers stream
        into a temporary file or buffer and discard it on error.
        """
        validate_key(key)
        what = f"read {key!r}" + (f" version {version_id}" if version_id else "")
        digest = hashlib.sha256()
        size = 0
        with _translated(what):
            resp = self.client.get_object(
                Bucket=self.bucket, Key=key, **self._version_kw(version_id)
            )
            body = resp["Body"]
            try:
                for chunk in body.iter_chunks(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dest.write(chunk)
            finally:
                body.close()
        recorded = (resp.get("Metadata") or {}).get("sha256")
        expected_size = resp.get("ContentLength")
        if (
            digest.hexdigest() != sha256
            or (recorded is not None and recorded != sha256)
            or (expected_size is not None and expected_size != size)
        ):
            raise ObjectCorrupted(f"object {key!r} does not match its SHA-256")
        return size

    def read(self, key: str, *, version_id: str | None, sha256: str) -> bytes:
        """Return the content, verified against ``sha256`` (:class:`ObjectCorrupted`)."""
        buf = io.BytesIO()
        self.copy_to(key, buf, version_id=version_id, sha256=sha256)
        return buf.getvalue()

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        """What the server records: size, version, lock mode, retain-until, legal hold, sha256."""
        validate_key(key)
        with _translated(f"look up {key!r}"):
            resp = self.client.head_object(
                Bucket=self.bucket, Key=key, **self._version_kw(version_id)
            )
        until = resp.get("ObjectLockRetainUntilDate")
        return ObjectInfo(
            key=key,
            version_id=resp.get("VersionId") or version_id,
            size=int(resp.get("ContentLength") or 0),
            sha256=(resp.get("Metadata") or {}).get("sha256"),
            retain_until=_aware(until) if until is not None else None,
            legal_hold=resp.get("ObjectLockLegalHoldStatus") == "ON",
            lock_mode=resp.get("ObjectLockMode"),
        )

    # -- retention -----------------------------------------------------------------------
    def extend_retention(self, key: str, *, version_id: str | None, retain_until: datetime) -> None:
        """Move retain-until later, keeping the object's lock mode.

        An earlier date raises :class:`RetentionViolation` before the server is asked (the
        server refuses it too: AccessDenied → :class:`RetentionViolation`).
        """
        validate_key(key)
        what = f"change the retention of {key!r}"
        with _translated(what, retention_op=True):
            try:
                current = self.client.get_object_retention(
                    Bucket=self.bucket, Key=key, **self._version_kw(version_id)
                ).get("Retention", {})
            except ClientError as exc:
                if _error_code(exc) not in (
                    "ObjectLockConfigurationNotFoundError",
                    "NoSuchObjectLockConfiguration",
                ):
                    raise
                current = {}
        new = _ceil_second(retain_until)
        current_mode = current.get("Mode")
        # Never weaker than the store's mode: a GOVERNANCE lock in a COMPLIANCE store is upgraded.
        mode = "COMPLIANCE" if "COMPLIANCE" in (self.lock_mode, current_mode) else (
            current_mode or self.lock_mode)
        current_until = current.get("RetainUntilDate")
        if current_until is not None:
            current_until = _aware(current_until)
            # Compare at the server's whole-second precision: extending to the same deadline
            # that put() rounded up is not a shortening.
            if new < current_until:
                raise RetentionViolation(
                    f"retention of {key!r} can only be extended: it is kept until "
                    f"{utc_iso(current_until)}, {utc_iso(retain_until)} is earlier"
                )
            if new == current_until and mode == current_mode:
                return
            new = max(new, current_until)
        retention: Any = {"Mode": mode, "RetainUntilDate": new}
        extra: dict[str, Any] = {}
        if current_mode == "GOVERNANCE" and mode == "COMPLIANCE":
            # S3 (and RGW) treat any change of a GOVERNANCE retention as a bypass, even this
            # upgrade to a stronger mode with a later date; nothing is weakened by it.
            extra["BypassGovernanceRetention"] = True
        with _translated(what, retention_op=True):
            self.client.put_object_retention(
                Bucket=self.bucket,
                Key=key,
                Retention=retention,
                **self._version_kw(version_id),
                **extra,
            )

    def set_legal_hold(self, key: str, *, version_id: str | None, on: bool) -> None:
        """Place (``on``) or release a legal hold on one version."""
        validate_key(key)
        with _translated(f"set the legal hold of {key!r}", retention_op=True):
            self.client.put_object_legal_hold(
                Bucket=self.bucket,
                Key=key,
                LegalHold={"Status": "ON" if on else "OFF"},
                **self._version_kw(version_id),
            )

    def delete(self, key: str, *, version_id: str | None, now: datetime) -> None:
        """Delete one version; refused (:class:`RetentionViolation`) under hold or before expiry.

        Without ``version_id`` the current version is looked up and deleted by its id: a delete
        without VersionId would only add a delete marker and leave the data in place.
        """
        info = self.head(key, version_id=version_id)
        if info.legal_hold:
            raise RetentionViolation(f"object {key!r} is under legal hold")
        if info.retain_until is not None and _aware(now) < info.retain_until:
            raise RetentionViolation(
                f"object {key!r} is retained until {utc_iso(info.retain_until)}; deletion refused"
            )
        if not info.version_id or info.version_id == "null":
            raise StorageError(f"object {key!r} has no version id; refusing an unversioned delete")
        kwargs: dict[str, Any] = {}
        if self.governance_bypass:
            kwargs["BypassGovernanceRetention"] = True
        with _translated(f"delete {key!r} version {info.version_id}", retention_op=True):
            self.client.delete_object(
                Bucket=self.bucket, Key=key, VersionId=info.version_id, **kwargs
            )

    def quarantine(
        self, key: str, *, version_id: str | None, reason: str, found_at: datetime,
        retain_until: datetime | None,
    ) -> ObjectInfo:
        """Tag the version ``pdm-quarantine=<reason>``, ``pdm-found-at=<UTC>``; keep it locked.

        An orphan without a lock (or with a weaker one) gets this store's mode until
        ``retain_until``; an existing longer lock is kept as it is.
        """
        info = self.head(key, version_id=version_id)
        if not info.version_id or info.version_id == "null":
            raise StorageError(f"object {key!r} has no version id; cannot quarantine it")
        tags: Any = {"TagSet": [
            {"Key": "pdm-quarantine", "Value": _tag_value(reason)},
            {"Key": "pdm-found-at", "Value": _aware(found_at).strftime("%Y-%m-%dT%H:%M:%SZ")},
        ]}
        with _translated(f"tag {key!r} as quarantined"):
            self.client.put_object_tagging(
                Bucket=self.bucket, Key=key, VersionId=info.version_id, Tagging=tags)
        if retain_until is not None and (
            info.retain_until is None or info.retain_until < _aware(retain_until)
            or info.lock_mode != self.lock_mode
        ):
            target = max(_aware(retain_until), info.retain_until or _aware(retain_until))
            self.extend_retention(key, version_id=info.version_id, retain_until=target)
        return self.head(key, version_id=info.version_id)

    def tags(self, key: str, *, version_id: str | None) -> dict[str, str]:
        """The object tags of one version (quarantine marks)."""
        with _translated(f"read the tags of {key!r}"):
            resp = self.client.get_object_tagging(
                Bucket=self.bucket, Key=key, **self._version_kw(version_id))
        return {t["Key"]: t["Value"] for t in resp.get("TagSet", [])}

    # -- listing and health --------------------------------------------------------------
    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Yield once each key under ``prefix`` with a stored version (probe objects skipped)."""
        seen: set[str] = set()
        with _translated(f"list objects under {prefix!r}"):
            paginator = self.client.get_paginator("list_object_versions")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for version in page.get("Versions", []):
                    key = version.get("Key")
                    if key is None or key in seen or key.startswith(PROBE_PREFIX):
                        continue
                    seen.add(key)
                    yield key

    def check(self) -> list[str]:
        """Problems that keep the store from working; empty when healthy.

        Checks: the bucket exists and is reachable with these credentials; Object Lock and
        versioning are Enabled; a write works. The write probe is a tiny object under
        ``_probe/`` put *without* retention, whose version is then deleted; if the bucket has a
        default retention the probe stays locked (a few bytes) and that is not reported as a
        problem.
        """
        where = f"bucket {self.bucket!r} at {self.endpoint_url or 'the default AWS endpoint'}"
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = _error_code(exc), _status(exc)
            if code in ("NoSuchBucket", "404", "NotFound") or status == 404:
                return [f"S3 {where} does not exist; {CREATE_BUCKET_HINT}"]
            if code in _DENIED_CODES or status == 403:
                return [
                    f"S3 {where}: access denied; the credentials need s3:ListBucket, "
                    "s3:GetObject, s3:PutObject, s3:PutObjectRetention, s3:PutObjectLegalHold "
                    "and s3:GetBucketObjectLockConfiguration on it"
                ]
            return [f"S3 {where} is not usable: {_describe(exc)}"]
        except BotoCoreError as exc:
            return [f"S3 {where} cannot be reached: {exc}"]

        problems: list[str] = []
        enabled: str | None
        try:
            lock = self.client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = lock.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled")
        except ClientError as exc:
            enabled = None if _error_code(exc) == "ObjectLockConfigurationNotFoundError" else (
                f"unknown ({_describe(exc)})"
            )
        except BotoCoreError as exc:
            return [f"S3 {where} cannot be reached: {exc}"]
        if enabled != "Enabled":
            problems.append(
                f"Object Lock is not enabled on S3 {where} "
                f"(status: {enabled or 'not configured'}); records would not be protected by "
                "the server. Object Lock is chosen when a "
                f"bucket is created: {CREATE_BUCKET_HINT}, then point PDM_S3_BUCKET at it"
            )
        versioning: str | None
        try:
            versioning = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        except (ClientError, BotoCoreError) as exc:
            versioning = f"unknown ({exc})"
        if versioning != "Enabled":
            problems.append(
                f"versioning is not enabled on S3 {where} "
                f"(status: {versioning or 'never enabled'}); "
                "Object Lock needs it: use a bucket created with Object Lock"
            )
        problems.extend(self._probe_write(where))
        return problems

    def _probe_write(self, where: str) -> list[str]:
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        body = b"pdm-records write probe\n"
        kwargs: dict[str, Any] = {}
        if self.sse:
            kwargs["ServerSideEncryption"] = self.sse
        try:
            resp = self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentMD5=_md5_b64(hashlib.md5(body, usedforsecurity=False).digest()),
                **kwargs,
            )
        except ClientError as exc:
            return [f"cannot write to S3 {where}: {_describe(exc)}"]
        except BotoCoreError as exc:
            return [f"cannot write to S3 {where}: {exc}"]
        version_id = resp.get("VersionId")
        if version_id and version_id != "null":
            # Refused when the bucket has a default retention: the probe then stays (tiny).
            with contextlib.suppress(ClientError, BotoCoreError):
                self.client.delete_object(Bucket=self.bucket, Key=key, VersionId=version_id)
        return []
