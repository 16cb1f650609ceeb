"""Audit packages (JSON API) and the installation's public key (docs/audit-package.md)."""

from __future__ import annotations

import tempfile
from typing import Any

from flask import current_app, send_file
from marshmallow import Schema, fields, validate
from werkzeug.wrappers import Response

from ..access import require_actor, requires
from ..audited_reads import client_address, commit_read
from ..context import get_store
from ..errors import ServiceUnavailable
from ..extensions import db
from ..models import Case
from ..permissions import Permission
from ..schemas.responses import InstallationKeySchema, binary_content
from ..services import requests as svc
from .docs import ApiBlueprint

PREFIX = ""
blp = ApiBlueprint("api_packages", __name__, description="Audit packages and the signing key")


PACKAGE = binary_content(("application/zip",), "The signed audit package (ZIP).")


class PackageRequestSchema(Schema):
    cases = fields.List(fields.String(), required=True,
                        validate=validate.Length(min=1, max=500),
                        metadata={"description": "case numbers or ids (e.g. a search result)"})


def signing_key() -> Any:
    from ..signing_key import SigningKeyError, load_or_create

    try:
        return load_or_create(current_app.config["PDM_SIGNING_KEY_PATH"])
    except SigningKeyError as exc:
        current_app.logger.error("audit package signing key unusable: %s", exc)
        raise ServiceUnavailable("The installation's signing key cannot be read; no package "
                                 "was made. Run 'pdm doctor'.") from exc


def public_key_view() -> dict[str, str]:
    from ..signing_key import public_info

    info = public_info(signing_key())
    return {"algorithm": "Ed25519", "public_key": info.base64, "fingerprint": info.fingerprint,
            "pem": info.pem}


def send_package(cases: list[Case]) -> Response:
    """Audit the export (commit), write the package to a temporary file (constant memory)
    and stream it; the file is removed when the response is closed."""
    from ..services.export import prepare_export, write_package
    from ..signing_key import public_info

    key = signing_key()
    store = get_store()
    plan = prepare_export(db.session, store, actor=require_actor(), cases=cases,
                          key_fingerprint=public_info(key).fingerprint,
                          remote_addr=client_address())
    commit_read(db.session)  # audited (and checkpointed) before anything is sent
    # Closed (and so removed) by the response once sent, or below on failure.
    handle = tempfile.TemporaryFile(prefix="pdm-package-")  # noqa: SIM115
    try:
        write_package(db.session, store, plan, handle, signing_key=key,
                      site_name=current_app.config["PDM_SITE_NAME"])
    except BaseException:
        handle.close()
        raise
    handle.seek(0)
    name = (f"audit-package-{plan.numbers[0]}.zip" if len(plan.numbers) == 1
            else f"audit-package-{len(plan.numbers)}-cases.zip")
    return send_file(handle, mimetype="application/zip", as_attachment=True,
                     download_name=name)


@blp.route("/installation-key", methods=["GET"])
@requires(Permission.AUTHENTICATED)
@blp.alt_response(200, schema=InstallationKeySchema, success=True)
def installation_key() -> dict[str, str]:
    """The Ed25519 public key that signs audit packages (pin it when verifying)."""
    return public_key_view()


@blp.route("/cases/<int:case_id>/package", methods=["POST"])
@requires(Permission.EXPORT_PACKAGES)
@blp.doc(responses={200: PACKAGE})
@blp.errors(500)
def export_case(case_id: int) -> Response:
    """The audit package of one case (ZIP). Recorded as ``case.exported``."""
    case = svc.get_case(db.session, require_actor(), case_id)
    return send_package([case])


@blp.route("/packages", methods=["POST"])
@requires(Permission.EXPORT_PACKAGES)
@blp.arguments(PackageRequestSchema)
@blp.doc(responses={200: PACKAGE})
@blp.errors(404, 500)
def export_cases(data: dict[str, Any]) -> Response:
    """One audit package of several cases (e.g. a search result), by number or id."""
    from ..services.export import find_cases

    actor = require_actor()
    cases = [svc.get_case(db.session, actor, c.id) for c in find_cases(db.session, data["cases"])]
    return send_package(cases)
