"""The shapes of the JSON API's answers, for the OpenAPI document.

The views build these bodies themselves (``services.case_views.case_detail``, ``job_view``, …);
these schemas describe them for clients and are documented with ``alt_response(...,
success=True)``, not used to dump, so documenting an answer never changes it. That the two agree
is checked by schemathesis's ``response_schema_conformance`` (tests/hostile/test_schemathesis.py).
Every field is listed: an undocumented field fails that check (``additionalProperties: false``).
"""

from __future__ import annotations

from marshmallow import Schema, fields

from . import UserSchema
from .requests import CaseSummarySchema

MESH_MEDIA_TYPES = ("model/stl", "model/obj", "application/ply", "model/off", "model/3mf")
ATTACHMENT_MEDIA_TYPES = (*MESH_MEDIA_TYPES, "application/zip", "application/dicom",
                          "application/pdf", "image/png", "image/jpeg")


def binary_content(media_types: tuple[str, ...], description: str) -> dict[str, object]:
    """A documented file answer (``send_file``): the bytes in one of ``media_types``."""
    return {"description": description,
            "content": {media_type: {"schema": {"type": "string", "format": "binary"}}
                        for media_type in media_types}}


class PageSchema(Schema):
    page = fields.Integer(required=True)
    per_page = fields.Integer(required=True)
    total = fields.Integer(required=True)


class UserPageSchema(PageSchema):
    items = fields.List(fields.Nested(UserSchema), required=True)


class CasePageSchema(PageSchema):
    items = fields.List(fields.Nested(CaseSummarySchema), required=True)


# -- the case -------------------------------------------------------------------------------

class CaseDeviceTypeSchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    category = fields.String(required=True)
    implantable = fields.Boolean(required=True)
    parameters = fields.List(fields.Dict(), required=True,
                             metadata={"description": "design parameters: name, unit, …"})


class PrescriberSchema(Schema):
    id = fields.Integer(required=True)
    printed_name = fields.String(required=True)
    registration_number = fields.String(required=True, allow_none=True)


class AttachmentViewSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    units = fields.String(required=True, allow_none=True)
    original_name = fields.String(required=True)
    media_type = fields.String(required=True)
    size = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    state = fields.String(required=True)
    retain_until = fields.DateTime(required=True)


class RevisionSchema(Schema):
    id = fields.Integer(required=True)
    revision = fields.Integer(required=True)
    status = fields.String(required=True)
    content = fields.Dict(required=True, metadata={"description": "the request's fields"})
    content_sha256 = fields.String(required=True, allow_none=True)
    created_by = fields.String(required=True)
    created_at = fields.DateTime(required=True)
    attachments = fields.List(fields.Nested(AttachmentViewSchema), required=True)


class SignatureViewSchema(Schema):
    id = fields.Integer(required=True)
    meaning = fields.String(required=True)
    printed_name = fields.String(required=True)
    signed_at = fields.DateTime(required=True)
    target_type = fields.String(required=True)
    target_id = fields.Integer(required=True)
    content_sha256 = fields.String(required=True)
    manifestation = fields.String(required=True)
    status = fields.String(required=True, metadata={"description": "`valid`, or why not"})


class HistoryEntrySchema(Schema):
    from_ = fields.String(required=True, allow_none=True, data_key="from")
    to = fields.String(required=True)
    by = fields.String(required=True)
    at = fields.DateTime(required=True)
    reason = fields.String(required=True, allow_none=True)
    signature_id = fields.Integer(required=True, allow_none=True)


class VerificationSummarySchema(Schema):
    id = fields.Integer(required=True)
    passed = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)
    envelope_version_id = fields.Integer(required=True)
    envelope_sha256 = fields.String(required=True)
    mesh_sha256 = fields.String(required=True)
    report_sha256 = fields.String(required=True)
    checks = fields.List(fields.Dict(), required=True,
                         metadata={"description": "each check with its margin, worst first"})
    warnings = fields.List(fields.Raw(), required=True)
    digest = fields.Boolean(required=True,
                            metadata={"description": "the stored report still has its SHA-256"})


class IterationViewSchema(Schema):
    id = fields.Integer(required=True)
    number = fields.Integer(required=True)
    units = fields.String(required=True)
    notes = fields.String(required=True)
    based_on_revision = fields.Integer(required=True, allow_none=True)
    original_name = fields.String(required=True)
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True)
    created_at = fields.DateTime(required=True)
    verification = fields.Nested(VerificationSummarySchema, required=True, allow_none=True)


class CommentCreatedSchema(Schema):
    id = fields.Integer(required=True)
    body = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class CommentViewSchema(CommentCreatedSchema):
    author = fields.String(required=True)


class ConfirmationSchema(Schema):
    id = fields.Integer(required=True)
    met = fields.Boolean(required=True)
    note = fields.String(required=True)
    confirmed_by = fields.String(required=True)
    confirmed_at = fields.DateTime(required=True)


class CharacteristicSchema(Schema):
    item = fields.String(required=True)
    label = fields.String(required=True)
    prescribed = fields.Raw(required=True, allow_none=True)
    prescribed_text = fields.String(required=True)
    confirmation = fields.Nested(ConfirmationSchema, required=True, allow_none=True)


class ConfirmationsViewSchema(Schema):
    iteration = fields.Integer(required=True)
    request_revision = fields.Integer(required=True)
    items = fields.List(fields.Nested(CharacteristicSchema), required=True)
    complete = fields.Boolean(required=True)


class RetentionSchema(Schema):
    retention_class = fields.String(required=True)
    retain_until = fields.DateTime(required=True, allow_none=True)
    explanation = fields.String(required=True, allow_none=True)
    regimes = fields.List(fields.Dict(), required=True)
    not_applied = fields.List(fields.Raw(), required=True)
    holds = fields.List(fields.Dict(), required=True)
    on_hold = fields.Boolean(required=True)
    disposal = fields.Dict(required=True, allow_none=True)
    disposal_refusal = fields.String(required=True, allow_none=True)
    storage = fields.Dict(required=True, allow_none=True,
                          metadata={"description": "lock state the object store reports"})


class ActionSchema(Schema):
    to = fields.String(required=True)
    label = fields.String(required=True)
    signature = fields.String(required=True, allow_none=True)
    reason_required = fields.Boolean(required=True)


class CaseDetailSchema(Schema):
    """A case with its request revisions, attachments, signatures, history, design iterations,
    comments, retention, and what you may do next."""

    id = fields.Integer(required=True)
    number = fields.String(required=True)
    status = fields.String(required=True)
    patient_code = fields.String(required=True)
    device_type = fields.Nested(CaseDeviceTypeSchema, required=True)
    institution = fields.String(required=True)
    assigned_engineer_id = fields.Integer(required=True, allow_none=True)
    prescriber = fields.Nested(PrescriberSchema, required=True)
    created_at = fields.DateTime(required=True)
    delivered_on = fields.Date(required=True, allow_none=True)
    revisions = fields.List(fields.Nested(RevisionSchema), required=True)
    signatures = fields.List(fields.Nested(SignatureViewSchema), required=True)
    history = fields.List(fields.Nested(HistoryEntrySchema), required=True)
    design_iterations = fields.List(fields.Nested(IterationViewSchema), required=True)
    comments = fields.List(fields.Nested(CommentViewSchema), required=True)
    characteristic_confirmations = fields.Nested(ConfirmationsViewSchema, required=True,
                                                 allow_none=True)
    takes_changes = fields.Boolean(required=True, metadata={
        "description": "False once the case's disposal is signed: every change is refused "
                       "with 409."})
    can_confirm = fields.Boolean(required=True)
    retention = fields.Nested(RetentionSchema, required=True)
    allowed_actions = fields.List(fields.Nested(ActionSchema), required=True)
    editable = fields.Boolean(required=True)
    can_add_iteration = fields.Boolean(required=True)
    can_verify = fields.Boolean(required=True)


class AttachmentCreatedSchema(Schema):
    id = fields.Integer(required=True)
    sha256 = fields.String(required=True)
    size = fields.Integer(required=True)
    media_type = fields.String(required=True)
    original_name = fields.String(required=True)
    kind = fields.String(required=True)


class IterationCreatedSchema(Schema):
    id = fields.Integer(required=True)
    number = fields.Integer(required=True)
    status = fields.String(required=True, metadata={"description": "the case's status now"})
    sha256 = fields.String(required=True)


class JobSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True)
    status = fields.String(required=True, metadata={
        "description": "queued, running, succeeded or failed"})
    progress = fields.String(required=True)
    error = fields.String(required=True, allow_none=True)
    result = fields.Dict(required=True)
    created_at = fields.DateTime(required=True)
    attempts = fields.Integer(required=True)


# -- the rest -------------------------------------------------------------------------------

class NotificationSchema(Schema):
    id = fields.Integer(required=True)
    case_id = fields.Integer(required=True, allow_none=True)
    message = fields.String(required=True)
    created_at = fields.DateTime(required=True)


class NotificationListSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema), required=True)


class EnvelopeSchema(Schema):
    id = fields.Integer(required=True)
    device_type_id = fields.Integer(required=True)
    version = fields.Integer(required=True)
    status = fields.String(required=True)
    definition = fields.Dict(required=True, metadata={"description": "the envelope's checks"})
    notes = fields.String(required=True)
    content_sha256 = fields.String(required=True, allow_none=True)
    author_id = fields.Integer(required=True)
    approved_by_id = fields.Integer(required=True, allow_none=True)
    approved_at = fields.DateTime(required=True, allow_none=True)


class EnvelopeListSchema(Schema):
    items = fields.List(fields.Nested(EnvelopeSchema), required=True)


class InstallationKeySchema(Schema):
    algorithm = fields.String(required=True)
    public_key = fields.String(required=True, metadata={"description": "raw key, base64"})
    fingerprint = fields.String(required=True)
    pem = fields.String(required=True)


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"description": "`ok` or `unavailable`"})
    problems = fields.List(fields.String(), required=True)
