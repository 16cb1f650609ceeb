"""The signature service, used by every signed action (21 CFR Part 11 §11.50, §11.70, §11.200).

Signing requires the signer to re-enter their password at that moment, plus a current TOTP code
when they have enrolled a second factor (DOMAIN.md §9). Only holders of the role a meaning belongs
to may sign it: an administrator signs no clinical or quality action without that role too.
A signature records the printed name, UTC time and meaning, and is bound to the SHA-256 of the
canonical content of the exact record version (which includes the SHA-256 of every attached
file). The signed content and its manifestation are written as one canonical-JSON object to the
write-once store: the record of truth, indexed by the ``signature`` row.
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
from ..errors import Forbidden, ServiceUnavailable, ValidationError
from ..models import Signature, SignatureMeaning, User
from ..storage import ObjectStore, StorageError, StorageUnavailable
from . import DbSession
from .audit import record_event


@dataclass(frozen=True)
class SignatureCheck:
    valid: bool
    reason: str


# Who may sign with which meaning (21 CFR Part 11 §11.10(g): authority checks).
SIGNING_ROLES: dict[SignatureMeaning, frozenset[str]] = {
    SignatureMeaning.AUTHORED: frozenset({"clinician"}),
    SignatureMeaning.APPROVED: frozenset({"clinician"}),
    SignatureMeaning.VERIFIED: frozenset({"engineer"}),
    SignatureMeaning.REVIEWED: frozenset({"quality"}),
    SignatureMeaning.RELEASED: frozenset({"quality"}),
    SignatureMeaning.LEGAL_HOLD: frozenset({"quality"}),
    SignatureMeaning.HOLD_RELEASED: frozenset({"quality"}),
    SignatureMeaning.DISPOSAL: frozenset({"quality"}),
    SignatureMeaning.ENVELOPE_APPROVAL: frozenset({"quality"}),
}


class SigningAuthenticationFailed(ValidationError):
    """A wrong password or second factor at signing. The error handlers record the failure
    (audit event, lock-out count, security log) after rolling the request back."""

    def __init__(self, message: str, field_errors: dict[str, list[str]], *, user_id: int,
                 kind: str) -> None:
        super().__init__(message, field_errors)
        self.user_id = user_id
        self.kind = kind


@dataclass(frozen=True)
class VerifiedSigner:
    """Proof, within this request, that :func:`check_password` accepted ``user_id``: a TOTP
    code is accepted once only (replay protection), so a caller that checks before doing
    other work passes this to :func:`sign` instead of the credentials a second time."""

    user_id: int


def _verifies(password: str, hashed: str) -> bool:
    try:
        password.encode("utf-8")  # a lone surrogate (JSON "\\ud800") cannot be hashed
    except UnicodeEncodeError:
        return False
    return bool(verify_password(password, hashed))


def check_password(actor: User, password: str | None,
                   totp_code: str | None = None) -> VerifiedSigner:
    """Part 11 §11.200: the signer re-enters the password at the moment of signing, and a
    current code from their authenticator app when they have enrolled one.

    Refused while the account is locked out (no credential is checked then)."""
    from ..security.mfa import is_enrolled, verify_code
    from .auth import is_locked

    if is_locked(actor):
        raise ValidationError(
            "Too many failed attempts: signing is paused for your account. Try again later or "
            "ask an administrator.", {"password": ["Signing is paused after failed attempts."]})
    if not password or not actor.password or not _verifies(password, actor.password):
        raise SigningAuthenticationFailed(
            "The password is not correct; nothing was signed.",
            {"password": ["Enter your current password to sign."]}, user_id=actor.id,
            kind="password")
    if is_enrolled(actor) and not verify_code(actor, totp_code):
        raise SigningAuthenticationFailed(
            "The authenticator code is not correct; nothing was signed.",
            {"totp_code": ["Enter the current 6-digit code from your authenticator app."]},
            user_id=actor.id, kind="totp")
    return VerifiedSigner(actor.id)


def check_signing_role(actor: User, meaning: SignatureMeaning) -> None:
    allowed = SIGNING_ROLES.get(meaning, frozenset())
    if not allowed & set(actor.role_names):
        raise Forbidden(f"Only a {' or '.join(sorted(allowed)) or 'designated'} user may sign "
                        f"with the meaning '{meaning.value}'.")


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
    totp_code: str | None = None,
    verified: VerifiedSigner | None = None,
    meaning: SignatureMeaning,
    target_type: str,
    target_id: int,
    content: dict[str, Any],
    record_key_prefix: str,
    retain_until: datetime,
    case_id: int | None = None,
    now: datetime | None = None,
) -> Signature:
    """Verify the signer (role, then password and second factor unless ``verified`` says
    :func:`check_password` accepted them already), bind a signature to ``content`` and store
    the signed record.

    Order: the signature row and its audit event are flushed first; the signed-record object
    is written last. If the write fails, the caller's transaction rolls back and nothing is
    signed. If the commit fails after the write, the object is an orphan under ``records/``
    whose key names the binding hash; ``pdm reconcile`` lists it and ``--repair`` quarantines it
    (docs/storage-consistency.md). The object is written, locked and read back before the
    commit in every case, so no committed signature names an unprotected object.
    """
    check_signing_role(actor, meaning)
    if verified is None or verified.user_id != actor.id:
        check_password(actor, password, totp_code)
    from .auth import record_success

    record_success(session, actor)
    now = now or utcnow()
    signature = Signature(
        case_id=case_id, target_type=target_type, target_id=target_id, meaning=meaning,
        signer_id=actor.id, printed_name=actor.printed_name, signer_email=actor.email,
        signed_at=now, content_sha256=canonical_sha256(content), binding_sha256="",
        signed_record=content, record_key="",
    )
    signature.binding_sha256 = canonical_sha256(manifestation(signature))
    signature.record_key = (f"{record_key_prefix}/{target_type}-{target_id}-{meaning.value}-"
                            f"{signature.binding_sha256[:16]}.json")
    session.add(signature)
    session.flush()
    record_event(session, actor=actor, action="signature.created", target_type=target_type,
                 target_id=target_id, case_id=case_id, after={
                     "signature_id": signature.id, "meaning": meaning.value,
                     "printed_name": actor.printed_name, "signed_at": now,
                     "content_sha256": signature.content_sha256,
                     "binding_sha256": signature.binding_sha256,
                     "record_key": signature.record_key})
    body = signed_document(signature)
    with tempfile.NamedTemporaryFile(prefix="pdm-signed-") as tmp:
        tmp.write(body)
        tmp.flush()
        try:
            info = store.put(signature.record_key, Path(tmp.name), sha256=sha256_hex(body),
                             size=len(body), media_type="application/json",
                             retain_until=retain_until)
        except StorageUnavailable as exc:
            raise ServiceUnavailable(
                "The record store is unavailable; nothing was signed. Try again later.") from exc
    signature.record_version_id = info.version_id
    session.flush()
    return signature


def signed_document(signature: Signature) -> bytes:
    """The canonical JSON object written to the store: the record, its signature, the binding."""
    return canonical_json({"record": signature.signed_record,
                           "signature": manifestation(signature),
                           "binding_sha256": signature.binding_sha256})


def verify_signature(
    signature: Signature, *, current: dict[str, Any] | None, signed: dict[str, Any] | None,
    store: ObjectStore | None = None,
) -> SignatureCheck:
    """Check a signature.

    1. the kept copy of the signed content still hashes to ``content_sha256``;
    2. the manifestation (signer, time, meaning, target record) still hashes to the binding,
       so the signature cannot be moved to another record;
    3. ``current`` (the record's immutable parts as the database holds them now) equals
       ``signed`` (the same parts taken from the signed content);
    4. with ``store``: the signed-record object in the store is byte-identical.
    """
    if canonical_sha256(signature.signed_record) != signature.content_sha256:
        return SignatureCheck(False, "the kept copy of the signed content was altered")
    if canonical_sha256(manifestation(signature)) != signature.binding_sha256:
        return SignatureCheck(False, "the signature does not belong to this record version")
    if current is not None and current != signed:
        return SignatureCheck(False, "the record's content changed after signing")
    if store is not None:
        try:
            store.read(signature.record_key, version_id=signature.record_version_id,
                       sha256=sha256_hex(signed_document(signature)))
        except StorageError as exc:
            return SignatureCheck(False, f"the stored signed record does not match: {exc}")
    return SignatureCheck(True, "valid")
