"""The signature service, used by every signed action (21 CFR Part 11 §11.50, §11.70, §11.200).

Signing requires the signer to re-enter their password at that moment. A signature records the
printed name, UTC time and meaning, and is bound to the SHA-256 of the canonical content of the
exact record version (which includes the SHA-256 of every attached file). The signed content
and its manifestation are written as one canonical-JSON object to the write-once store: the
record of truth, indexed by the ``signature`` row.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_security import verify_password

from ..canonical import canonical_json, canonical_sha256, sha256_hex
from ..clock import utcnow
from ..errors import ServiceUnavailable, ValidationError
from ..models import Signature, SignatureMeaning, User
from ..storage import ObjectStore, StorageError, StorageUnavailable
from . import DbSession
from .audit import record_event


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    reason: str


def check_password(actor: User, password: str | None) -> None:
    """Part 11 §11.200: the signer re-enters the password at the moment of signing."""
    if not password or not actor.password or not verify_password(password, actor.password):
        raise ValidationError(
            "The password is not correct; nothing was signed.",
            {"password": ["Enter your current password to sign."]})


def manifestation(signature: Signature) -> dict[str, Any]:
    """What the signature shows and binds (§11.50): signer, printed name, time, meaning, target."""
    return {
        "signer_id": signature.signer_id,
        "signer_email": signature.signer_email,
        "printed_name": signature.printed_name,
        "meaning": signature.meaning.value,
        "signed_at": signature.signed_at,
        "target_type": signature.target_type,
        "target_id": signature.target_id,
        "content_sha256": signature.content_sha256,
    }


def sign(
    session: DbSession,
    store: ObjectStore,
    *,
    actor: User,
    password: str | None,
    meaning: SignatureMeaning,
    target_type: str,
    target_id: int,
    content: dict[str, Any],
    record_key_prefix: str,
    retain_until: datetime,
    case_id: int | None = None,
    now: datetime | None = None,
) -> Signature:
    """Verify the password, bind a signature to ``content`` and store the signed record."""
    check_password(actor, password)
    now = now or utcnow()
    signature = Signature(
        case_id=case_id, target_type=target_type, target_id=target_id, meaning=meaning,
        signer_id=actor.id, printed_name=actor.printed_name, signer_email=actor.email,
        signed_at=now, content_sha256=canonical_sha256(content), binding_sha256="",
        record_key="",
    )
    signature.binding_sha256 = canonical_sha256(manifestation(signature))
    document = {"record": content, "signature": manifestation(signature),
                "binding_sha256": signature.binding_sha256}
    body = canonical_json(document)
    key = f"{record_key_prefix}/{target_type}-{target_id}-{meaning.value}-" \
          f"{signature.binding_sha256[:16]}.json"
    with tempfile.NamedTemporaryFile(prefix="pdm-signed-") as tmp:
        tmp.write(body)
        tmp.flush()
        try:
            info = store.put(key, Path(tmp.name), sha256=sha256_hex(body), size=len(body),
                             media_type="application/json", retain_until=retain_until)
        except StorageUnavailable as exc:
            raise ServiceUnavailable(
                "The record store is unavailable; nothing was signed. Try again later.") from exc
    signature.record_key = key
    signature.record_version_id = info.version_id
    session.add(signature)
    session.flush()
    record_event(session, actor=actor, action="signature.created", target_type=target_type,
                 target_id=target_id, case_id=case_id, after={
                     "signature_id": signature.id, "meaning": meaning.value,
                     "printed_name": actor.printed_name, "signed_at": now,
                     "content_sha256": signature.content_sha256,
                     "binding_sha256": signature.binding_sha256, "record_key": key})
    return signature


def verify_signature(
    signature: Signature, content: dict[str, Any], store: ObjectStore | None = None
) -> SignatureCheck:
    """Recompute the bindings; with ``store``, also check the stored signed record."""
    if canonical_sha256(content) != signature.content_sha256:
        return SignatureCheck(False, "the record's content changed after signing")
    if canonical_sha256(manifestation(signature)) != signature.binding_sha256:
        return SignatureCheck(False, "the signature does not belong to this record version")
    if store is not None:
        expected = canonical_json({"record": content, "signature": manifestation(signature),
                                   "binding_sha256": signature.binding_sha256})
        try:
            store.read(signature.record_key, version_id=signature.record_version_id,
                       sha256=sha256_hex(expected))
        except StorageError as exc:
            return SignatureCheck(False, f"the stored signed record does not match: {exc}")
    return SignatureCheck(True, "valid")
