"""A local write-once object store: the embedded default.

Layout under ``root``: ``data/<key>`` holds the bytes (read-only once written) and
``meta/<key>.json`` the store's own record (sha256, size, retain-until, legal hold, version id).
Writes go to a temporary file in the same folder, are fsynced, then hard-linked into place:
``os.link`` fails if the target exists, so a key can never be overwritten, even by a race.

The application enforces retention and holds here; someone with shell access to the server can
still delete files. Only S3 Object Lock in COMPLIANCE mode protects against that (see README).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from ..canonical import utc_iso
from .base import (
    InvalidKey,
    ObjectCorrupted,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    RetentionViolation,
    StorageUnavailable,
    validate_key,
)

CHUNK = 1024 * 1024


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC, as everywhere in the product (canonical.utc_iso)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class LocalWriteOnceStore(ObjectStore):
    name = "local"
    lock_mode = "LOCAL"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.meta_dir = self.root / "meta"

    # -- paths ---------------------------------------------------------------------------
    def _paths(self, key: str) -> tuple[Path, Path]:
        validate_key(key)
        data = self.data_dir / key
        meta = self.meta_dir / (key + ".json")
        # validate_key forbids traversal; this re-checks after path joining, belt and braces.
        for path, base in ((data, self.data_dir), (meta, self.meta_dir)):
            if not path.resolve().is_relative_to(base.resolve()):
                raise InvalidKey(f"unsafe object key {key!r}")
        return data, meta

    def _ensure_dirs(self) -> None:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.meta_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageUnavailable(
                f"object store folder {self.root} is not writable: {exc}"
            ) from exc

    def _load_meta(self, key: str, version_id: str | None) -> tuple[Path, dict[str, Any], Path]:
        data, meta_path = self._paths(key)
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"no object {key!r}") from exc
        except (OSError, ValueError) as exc:
            raise StorageUnavailable(f"object metadata for {key!r} unreadable: {exc}") from exc
        if version_id is not None and meta.get("version_id") != version_id:
            raise ObjectNotFound(f"no version {version_id!r} of {key!r}")
        return data, meta, meta_path

    def _write_meta(self, meta_path: Path, meta: dict[str, Any]) -> None:
        try:
            self._write_meta_file(meta_path, meta)
        except OSError as exc:
            raise StorageUnavailable(f"cannot write object metadata {meta_path.name}: {exc}") \
                from exc

    def _write_meta_file(self, meta_path: Path, meta: dict[str, Any]) -> None:
        meta_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=meta_path.parent, prefix=".meta-")
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(meta, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, meta_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- interface -----------------------------------------------------------------------
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
        data, meta_path = self._paths(key)
        self._ensure_dirs()
        if data.exists() or meta_path.exists():
            raise ObjectExists(f"object {key!r} exists and cannot be overwritten")
        version_id = uuid.uuid4().hex
        try:
            data.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=data.parent, prefix=".put-")
            digest = hashlib.sha256()
            written = 0
            try:
                with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
                    while chunk := src.read(CHUNK):
                        digest.update(chunk)
                        written += len(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                if digest.hexdigest() != sha256 or written != size:
                    raise ObjectCorrupted(
                        f"content of {key!r} changed while storing (sha256/size mismatch)"
                    )
                os.chmod(tmp, 0o444)
                try:
                    os.link(tmp, data)  # atomic create-if-absent: never overwrites
                except FileExistsError as exc:
                    raise ObjectExists(f"object {key!r} exists and cannot be overwritten") from exc
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            meta = {
                "key": key,
                "version_id": version_id,
                "sha256": sha256,
                "size": size,
                "media_type": media_type,
                "retain_until": utc_iso(retain_until),
                "legal_hold": legal_hold,
            }
            try:
                self._write_meta_file(meta_path, meta)
            except OSError:
                # The object never became visible: take the data file back so the key stays free.
                with contextlib.suppress(OSError):
                    os.chmod(data, 0o644)
                    data.unlink()
                raise
        except (ObjectExists, ObjectCorrupted):
            raise
        except (FileExistsError, NotADirectoryError) as exc:
            raise ObjectExists(f"object key {key!r} collides with an existing object") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot write object {key!r}: {exc}") from exc
        return ObjectInfo(key, version_id, size, sha256, retain_until, legal_hold, "LOCAL")

    def copy_to(self, key: str, dest: BinaryIO, *, version_id: str | None, sha256: str) -> int:
        data, meta, _ = self._load_meta(key, version_id)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(data, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    dest.write(chunk)
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"content of {key!r} is missing") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read object {key!r}: {exc}") from exc
        if digest.hexdigest() != sha256 or digest.hexdigest() != meta.get("sha256"):
            raise ObjectCorrupted(f"object {key!r} does not match its SHA-256")
        return size

    def read(self, key: str, *, version_id: str | None, sha256: str) -> bytes:
        import io

        buf = io.BytesIO()
        self.copy_to(key, buf, version_id=version_id, sha256=sha256)
        return buf.getvalue()

    def head(self, key: str, *, version_id: str | None = None) -> ObjectInfo:
        data, meta, _ = self._load_meta(key, version_id)
        try:
            size = data.stat().st_size
        except FileNotFoundError as exc:
            raise ObjectNotFound(f"content of {key!r} is missing") from exc
        except OSError as exc:
            raise StorageUnavailable(f"cannot read object {key!r}: {exc}") from exc
        return ObjectInfo(
            key=key,
            version_id=meta.get("version_id"),
            size=size,
            sha256=meta.get("sha256"),
            retain_until=_parse_time(meta["retain_until"]),
            legal_hold=bool(meta.get("legal_hold")),
            lock_mode="LOCAL",
        )

    def extend_retention(self, key: str, *, version_id: str | None, retain_until: datetime) -> None:
        _, meta, meta_path = self._load_meta(key, version_id)
        current = _parse_time(meta["retain_until"])
        retain_until = _aware(retain_until)
        if retain_until < current:
            raise RetentionViolation(
                f"retention of {key!r} can only be extended: it is kept until "
                f"{utc_iso(current)}, {utc_iso(retain_until)} is earlier"
            )
        meta["retain_until"] = utc_iso(retain_until)
        self._write_meta(meta_path, meta)

    def set_legal_hold(self, key: str, *, version_id: str | None, on: bool) -> None:
        _, meta, meta_path = self._load_meta(key, version_id)
        meta["legal_hold"] = bool(on)
        self._write_meta(meta_path, meta)

    def delete(self, key: str, *, version_id: str | None, now: datetime) -> None:
        data, meta, meta_path = self._load_meta(key, version_id)
        if meta.get("legal_hold"):
            raise RetentionViolation(f"object {key!r} is under legal hold")
        until = _parse_time(meta["retain_until"])
        if _aware(now) < until:
            raise RetentionViolation(
                f"object {key!r} is retained until {utc_iso(until)}; deletion refused"
            )
        try:
            os.chmod(data, 0o644)
            data.unlink(missing_ok=True)
            meta_path.unlink()
        except OSError as exc:
            raise StorageUnavailable(f"cannot delete object {key!r}: {exc}") from exc

    def quarantine(
        self, key: str, *, version_id: str | None, reason: str, found_at: datetime,
        retain_until: datetime | None,
    ) -> ObjectInfo:
        """Record the quarantine in the metadata file; extend retention to ``retain_until``.

        A data file without metadata (a put interrupted between the two writes, or a file
        placed in the folder by hand) gets a metadata file rebuilt from its bytes, so that the
        store accounts for it from now on.
        """
        data, meta_path = self._paths(key)
        try:
            _, meta, meta_path = self._load_meta(key, version_id)
        except ObjectNotFound:
            if version_id is not None or not data.exists():
                raise
            meta = self._rebuilt_meta(key, data, found_at)
        current = _parse_time(meta["retain_until"])
        if retain_until is not None and _aware(retain_until) > current:
            meta["retain_until"] = utc_iso(retain_until)
        meta["quarantine"] = {"reason": reason, "found_at": utc_iso(found_at)}
        self._write_meta(meta_path, meta)
        return self.head(key, version_id=meta["version_id"])

    def _rebuilt_meta(self, key: str, data: Path, now: datetime) -> dict[str, Any]:
        digest = hashlib.sha256()
        size = 0
        try:
            with open(data, "rb") as src:
                while chunk := src.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
        except OSError as exc:
            raise StorageUnavailable(f"cannot read object {key!r}: {exc}") from exc
        return {"key": key, "version_id": uuid.uuid4().hex, "sha256": digest.hexdigest(),
                "size": size, "media_type": "application/octet-stream",
                "retain_until": utc_iso(now), "legal_hold": False, "rebuilt": True}

    def iter_keys(self, prefix: str = "") -> Iterator[str]:
        """Keys with a metadata file, and data files without one (interrupted or foreign)."""
        keys: set[str] = set()
        for folder, suffix in ((self.meta_dir, ".json"), (self.data_dir, "")):
            if not folder.exists():
                continue
            for path in folder.rglob("*"):
                if path.name.startswith(".") or not path.is_file():
                    continue
                rel = path.relative_to(folder).as_posix()
                if suffix and not rel.endswith(suffix):
                    continue
                key = rel[: len(rel) - len(suffix)] if suffix else rel
                if key.startswith(prefix):
                    keys.add(key)
        yield from sorted(keys)

    def check(self) -> list[str]:
        try:
            self._ensure_dirs()
            with tempfile.NamedTemporaryFile(dir=self.data_dir, prefix=".probe-"):
                pass
        except (OSError, StorageUnavailable) as exc:
            return [f"local object store {self.root} is not writable: {exc}"]
        free = shutil.disk_usage(self.root).free
        if free < 100 * 1024 * 1024:
            return [f"local object store {self.root} has only {free // 2**20} MiB free"]
        return []
