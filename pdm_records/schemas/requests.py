"""The documented request (prescription / design input), per device category.

Sources: EU MDR 2017/745 Annex XIII §1 and MDCG 2021-3 Q6–Q7 (custom-made); FDA "Technical
Considerations for Additive Manufactured Medical Devices" (2017) §V.B, §VII (patient-matched).
Types and formats are checked here; what needs the database or configuration (the patient-code
pattern, the device type's parameters, the institution) is checked in the requests service.
``partial=True`` loads a draft (nothing required yet); submission loads the whole.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from ..clock import utcnow
from ..models import CaseStatus
from . import REQUIRED, Text

SIDES = ("left", "right", "bilateral", "midline", "not_applicable")
IMAGING_MODALITIES = ("CT", "CBCT", "MRI", "surface_scan", "other")


class RequiredBool(fields.Boolean):
    default_error_messages = {**fields.Boolean.default_error_messages, **REQUIRED}


class ParameterValues(fields.Dict):
    """``{parameter name: number}`` for the device type's design parameters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(validate=validate.Length(min=1, max=64)),
                         values=fields.Float(allow_nan=False), **kwargs)


class CommonRequestSchema(Schema):
    patient_code = Text(required=True, validate=validate.Length(min=1, max=32))
    device_type_id = fields.Integer(required=True, strict=False,
                                    validate=validate.Range(min=1, max=2**31 - 1),
                                    error_messages={"required": "Choose a device type."})
    institution_id = fields.Integer(required=True, strict=False,
                                    validate=validate.Range(min=1, max=2**31 - 1),
                                    error_messages={"required": "Choose the health institution."})
    anatomical_site = Text(required=True, validate=validate.Length(min=2, max=200))
    side = Text(required=True, validate=validate.OneOf(SIDES, error="Choose one of: {choices}."))
    intended_use = Text(required=True, validate=validate.Length(min=3, max=1000), multiline=True)
    clinical_indication = Text(required=True, validate=validate.Length(min=3, max=2000),
                               multiline=True)
    needed_by = fields.Date(required=True, error_messages=REQUIRED)

    @validates_schema
    def _dates(self, data: dict[str, Any], partial: Any = None, **_: Any) -> None:
        today = utcnow().date()
        if not partial and data.get("needed_by") and data["needed_by"] < today:
            raise ValidationError("The needed-by date is in the past.", "needed_by")
        imaging = data.get("imaging_date")
        if imaging and imaging > today:
            raise ValidationError("The imaging date is in the future.", "imaging_date")


class CustomMadeRequestSchema(CommonRequestSchema):
    """MDR Annex XIII §1: the prescriber states the specific design characteristics."""

    design_parameters = ParameterValues(load_default=dict)
    material = Text(load_default="", validate=validate.Length(max=200))
    fixation = Text(load_default="", validate=validate.Length(max=2000), multiline=True,
                    metadata={"description": "number, type and positions of fixation screws"})
    design_characteristics = Text(load_default="", validate=validate.Length(max=5000),
                                  multiline=True)
    justification = Text(required=True, validate=validate.Length(min=10, max=5000),
                         multiline=True,
                         metadata={"description": "why no marketed device meets the need"})
    exclusive_use_confirmed = RequiredBool(required=True)
    contains_medicinal_substance = RequiredBool(required=True)
    contains_human_or_animal_tissue = RequiredBool(required=True)

    @validates_schema
    def _characteristics_stated(self, data: dict[str, Any], partial: Any = None,
                                **_: Any) -> None:
        if partial:
            return
        if data.get("exclusive_use_confirmed") is False:
            raise ValidationError(
                "A custom-made device is for the exclusive use of this patient; confirm it.",
                "exclusive_use_confirmed")
        # Structured characteristics are required; a free-text description alone ("see the
        # STL") would let an upload stand in for them.
        stated = bool(data.get("design_parameters")) or any(
            str(data.get(k) or "").strip() for k in ("material", "fixation"))
        if not stated:
            raise ValidationError(
                "State the specific design characteristics: the design parameters, the "
                "material or the fixation. Imaging or a mesh alone does not count as design "
                "characteristics (MDCG 2021-3 Q6, footnote 10).", "design_characteristics")


class PatientMatchedRequestSchema(CommonRequestSchema):
    """FDA AM guidance §V.B, §VII: imaging and requested parameters within the envelope."""

    imaging_modality = Text(required=True, validate=validate.OneOf(
        IMAGING_MODALITIES, error="Choose one of: {choices}."))
    imaging_date = fields.Date(required=True, error_messages=REQUIRED)
    slice_thickness_mm = fields.Float(required=True, allow_nan=False,
                                      validate=validate.Range(min=0.01, max=20),
                                      error_messages=REQUIRED)
    resolution_mm = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                                 validate=validate.Range(min=0.001, max=20))
    processing_applied = Text(load_default="", validate=validate.Length(max=2000),
                              multiline=True)
    image_quality_notes = Text(load_default="", validate=validate.Length(max=2000),
                               multiline=True,
                               metadata={"description": "e.g. metal artefacts, motion"})
    requested_parameters = ParameterValues(load_default=dict)


class AdaptableRequestSchema(CommonRequestSchema):
    configuration = Text(required=True, validate=validate.Length(min=3, max=5000),
                         multiline=True,
                         metadata={"description": "configuration within the instructions"})


SCHEMAS: dict[str, type[CommonRequestSchema]] = {
    "custom_made": CustomMadeRequestSchema,
    "patient_matched": PatientMatchedRequestSchema,
    "adaptable": AdaptableRequestSchema,
}


class TransitionSchema(Schema):
    # Checked by the workflow (after the case is found, so that an unknown case answers 404
    # whatever the target); the enum tells clients the states there are.
    to = Text(required=True, validate=validate.Length(max=32), metadata={
        "enum": [s.value for s in CaseStatus],
        "description": "the target state; `allowed_actions` of the case lists the steps open "
                       "to you"})
    reason = Text(load_default="", validate=validate.Length(max=2000), multiline=True)
    password = fields.String(load_default=None, load_only=True,
                             validate=validate.Length(max=256))
    totp_code = fields.String(load_default=None, load_only=True, validate=validate.Length(max=10),
                              metadata={"description": "current authenticator code, when the "
                                                       "signer has enrolled two-factor"})
    delivered_on = fields.Date(load_default=None, allow_none=True)


class SubmitSchema(Schema):
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=256),
                             error_messages={"required": "Enter your password to sign."})
    totp_code = fields.String(load_default=None, load_only=True, validate=validate.Length(max=10),
                              metadata={"description": "current authenticator code, when the "
                                                       "signer has enrolled two-factor"})


class CommentSchema(Schema):
    body = Text(required=True, validate=validate.Length(min=1, max=5000), multiline=True)


class ConfirmedItemSchema(Schema):
    item = Text(required=True, validate=validate.Length(min=1, max=200))
    met = RequiredBool(required=True)
    note = Text(load_default="", validate=validate.Length(max=2000), multiline=True)


class CharacteristicConfirmationSchema(Schema):
    """The engineer confirms, item by item, that a design iteration meets each prescribed
    characteristic (custom-made and adaptable devices; MDR Annex XIII §1)."""

    items = fields.List(fields.Nested(ConfirmedItemSchema), required=True,
                        validate=validate.Length(min=1, max=200,
                                                 error="Confirm at least one characteristic."),
                        error_messages=REQUIRED)


class CaseSummarySchema(Schema):
    id = fields.Integer()
    number = fields.String()
    # The types are for the OpenAPI document (a Function field has none of its own).
    status = fields.Function(lambda c: c.status.value, metadata={"type": "string"})
    patient_code = fields.Function(lambda c: c.patient.code, metadata={"type": "string"})
    device_type = fields.Function(lambda c: c.device_type.name, metadata={"type": "string"})
    category = fields.Function(lambda c: c.device_type.category.value,
                               metadata={"type": "string"})
    implantable = fields.Function(lambda c: c.device_type.implantable,
                                  metadata={"type": "boolean"})
    prescriber = fields.Function(lambda c: c.prescriber.printed_name,
                                 metadata={"type": "string"})
    created_at = fields.DateTime()
    updated_at = fields.DateTime()
