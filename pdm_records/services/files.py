"""Storing uploaded files: validated first, then written once, then indexed.

Order of operations (so that nothing is lost and nothing is orphaned unseen):
1. the upload is spooled to a temporary file, size-capped and hashed (``storage.uploads``);
2. the caller's validator inspects the spooled file; a refusal stores nothing;
3. the object is written to the store under a fresh, generated key;
4. the index row and the audit event are flushed in the caller's transaction.
If step 4's transaction later fails, the object exists without a row: its key prefix (``draft/``)
and short retention floor mark it, and ``pdm reconcile`` lists it as an orphan (``--repair``
quarantines it). The whole design: docs/storage-consistency.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import IO

from ..clock import utcnow
from ..errors import PayloadTooLarge, ServiceUnavailable, ValidationError
from ..models import FileState, StoredFile, User
from ..storage import ObjectStore, StorageUnavailable
from ..storage.uploads import EmptyUpload, SpooledUpload, UploadTooLarge, spool
from . import DbSession
from .audit import record_event

# Draft uploads are not yet records: a short floor keeps them safe while the draft is edited.
DRAFT_RETENTION = timedelta(days=30)

Validator = Callable[[SpooledUpload], str]
"""Inspects a spooled upload; returns the media type or raises ValidationError."""


def store_upload(
    session: DbSession,
    store: ObjectStore,
    *,
    actor: User,
    stream: IO[bytes],
    original_name: str | None,
    max_bytes: int,
    validate: Validator,
    case_id: int | None = None,
    field: str = "file",
    now: datetime | None = None,
) -> StoredFile:
    """Spool, validate, store and index one upload; return its draft :class:`StoredFile`."""
    now = now or utcnow()
    try:
        with spool(stream, max_bytes=max_bytes, original_name=original_name) as upload:
            media_type = validate(upload)
            key = f"draft/{now:%Y/%m}/{uuid.uuid4().hex}"
            retain_until = now + DRAFT_RETENTION
            try:
                info = store.put(key, upload.path, sha256=upload.sha256, size=upload.size,
                                 media_type=media_type, retain_until=retain_until)
            except StorageUnavailable as exc:
                raise ServiceUnavailable(
                    "The file store is unavailable; nothing was stored. Try again later."
                ) from exc
    except UploadTooLarge as exc:
        raise PayloadTooLarge(f"The file is too large: the limit is {exc.limit // 2**20} MiB.",
                              {field: [str(exc).capitalize() + "."]}) from exc
    except EmptyUpload as exc:
        raise ValidationError("The file is empty.", {field: ["The file is empty."]}) from exc
    row = StoredFile(
        case_id=case_id, backend=store.name, key=key, version_id=info.version_id,
        sha256=upload.sha256, size=upload.size, media_type=media_type,
        original_name=upload.original_name, state=FileState.DRAFT, retain_until=retain_until,
        created_by_id=actor.id, created_at=now,
    )
    session.add(row)
    session.flush()
    record_event(session, actor=actor, action="file.stored", target_type="stored_file",
                 target_id=row.id, case_id=case_id, after={
                     "key": key, "version_id": info.version_id, "sha256": upload.sha256,
                     "size": upload.size, "media_type": media_type,
                     "original_name": upload.original_name, "retain_until": retain_until})
    return row
