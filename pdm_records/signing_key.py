"""The installation's Ed25519 key that signs audit packages (docs/audit-package.md).

Generated on ``pdm init`` (or the first export) into ``PDM_SIGNING_KEY_PATH`` (default
``<instance>/signing_key.pem``, mode 0600, PKCS#8 PEM). The public key is shown by ``pdm doctor``,
on the case page and at ``/api/v1/installation-key`` so that an inspector can pin it when
verifying a package offline. Pure: no Flask, no database.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)


class SigningKeyError(RuntimeError):
    """The signing key cannot be read or created."""


@dataclass(frozen=True)
class PublicKeyInfo:
    base64: str  # the raw 32-byte key, base64
    fingerprint: str  # "SHA256:<hex of the raw key>"
    pem: str


def load_or_create(path: Path | str) -> Ed25519PrivateKey:
    """Read the private key at ``path``; create it (mode 0600, exclusively) when missing."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        except OSError as exc:
            raise SigningKeyError(f"cannot create the signing key {path}: {exc}") from exc
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            return key
    try:
        loaded = load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key {path}: {exc}") from exc
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyError(f"{path} is not an Ed25519 private key")
    return loaded


def public_info(key: Ed25519PrivateKey) -> PublicKeyInfo:
    public = key.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")
    return PublicKeyInfo(base64=base64.b64encode(raw).decode("ascii"),
                         fingerprint="SHA256:" + hashlib.sha256(raw).hexdigest(), pem=pem)


def key_problems(path: Path | str) -> list[str]:
    """For ``pdm doctor``: why the key at ``path`` is unusable (empty list when fine)."""
    path = Path(path)
    if not path.exists():
        return []  # created on first use
    problems = []
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        problems.append(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")
    try:
        load_or_create(path)
    except SigningKeyError as exc:
        problems.append(str(exc))
    return problems
