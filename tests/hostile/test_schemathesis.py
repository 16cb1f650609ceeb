"""Schemathesis against the OpenAPI document, authenticated, through the WSGI app, with its
response conformance checks.

Every response is validated by schemathesis (``case.validate_response``) with

- ``not_a_server_error``: no 5xx;
- ``status_code_conformance``: the status is one the operation documents (the document has no
  catch-all ``default`` response: pdm_records/api/docs.py);
- ``content_type_conformance`` and ``response_headers_conformance`` (e.g. ``Retry-After`` on
  429 and 503);
- ``response_schema_conformance``: the body matches the documented schema, the error body
  ``{"error", "message", "field_errors"}`` included (``additionalProperties: false``: an
  undocumented field fails);
- ``negative_data_rejection`` on requests generated to break the document (any 4xx that
  schemathesis counts as a refusal);
- ``positive_data_acceptance`` on requests generated to follow it, except for the operations
  in ``ACCEPTANCE_EXEMPT``: their rules need the database, the configuration or a secret, which
  a schema cannot state, and the product answers 422 naming the field (each entry says which
  rule). A request that follows the document elsewhere must not be refused with 400 or 422.

and by this module: no stack trace in any body.

Four passes, each roles × operations, with derandomised generation:

1. *valid requests*: one hand-made valid request per operation, in an order that builds the
   records (a case from draft to design, attachments, an approved envelope, a verification job,
   an audit package, …); each must answer 2xx and conform, so every documented success body is
   checked against a real answer;
2. *generated* (positive): ``FUZZ_EXAMPLES`` requests per operation for every role allowed to
   call it, ``REFUSED_EXAMPLES`` for the others (their 401/403 must conform too);
3. *negative*: ``NEGATIVE_EXAMPLES`` requests per operation that break the document, for the
   first role allowed to call it;
4. *records*: for the operations whose path names a record, ``RECORD_EXAMPLES`` generated
   requests per allowed role against the records of pass 1, so that generated bodies reach the
   services instead of a 404.

Over passes 2–4 at least ``MIN_OPERATIONS_2XX`` operations must answer 2xx at least once, so
the generated requests are known to get past authentication and validation (measured: see
docs/security/hostile-input.md). Each pass starts with fresh bearer tokens (generated
``DELETE /api/v1/tokens/{id}`` may revoke the current ones; it runs last in each role's turn).
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pdm_records.access import endpoint_permission
from pdm_records.permissions import permissions_for
from tests.conftest import PASSWORD
from tests.hostile.conftest import (
    ADMIN,
    CLIN,
    ENG,
    ENVELOPE,
    QUAL,
    QUAL2,
    SECOND_QUALITY,
    World,
    assert_no_internals,
)
from tests.meshes import binary_stl
from tests.requests_support import CUSTOM_MADE, common

ROLES = (CLIN, ENG, QUAL, ADMIN)
FUZZ_EXAMPLES = 15
REFUSED_EXAMPLES = 2
NEGATIVE_EXAMPLES = 10
RECORD_EXAMPLES = 8  # below the 10 failed signatures that lock an account out
MIN_OPERATIONS_2XX = 23  # measured: 24 of 33 (2026-12-03)

CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_headers_conformance, response_schema_conformance]

_REQUEST = ("the device type (an id in the database) decides which fields are required, its "
            "parameters name the design values, the institution must exist, and the "
            "patient-code pattern is configuration (PDM_PATIENT_CODE_PATTERN)")
_SIGNING = ("signing: the password (and second factor) must be the signer's; some steps need "
            "a reason or a delivery date")
_ENVELOPE = ("the device type must exist, and the definition is checked against the envelope "
             "schema and the device type's parameters")
_UPLOAD = ("the file's content must parse as the type its name claims (a mesh, a PDF, "
           "a DICOM file, …)")
ACCEPTANCE_EXEMPT: dict[str, str] = {
    "POST /api/v1/cases": _REQUEST,
    "PATCH /api/v1/cases/{case_id}/request": _REQUEST,
    "POST /api/v1/cases/{case_id}/attachments": _UPLOAD,
    "POST /api/v1/cases/{case_id}/iterations": _UPLOAD,
    "POST /api/v1/cases/{case_id}/submit": _SIGNING,
    "POST /api/v1/cases/{case_id}/transitions": _SIGNING,
    "POST /api/v1/envelopes/{version_id}/approve": _SIGNING,
    "POST /api/v1/envelopes": _ENVELOPE,
    "PATCH /api/v1/envelopes/{version_id}": _ENVELOPE,
    "POST /api/v1/cases/{case_id}/assignee": "engineer_id must name an active engineer",
    "POST /api/v1/cases/{case_id}/iterations/{number}/confirmations":
        "each item must be a characteristic the case's request prescribes",
    "POST /api/v1/users": "the password policy (passwords.password_problems: length, "
                          "common passwords, the account's own name or e-mail), the "
                          "e-mail syntax of email_validator, an e-mail address in use, a "
                          "clinician's registration number, a site that must exist",
    "POST /api/v1/packages": "a list of blank case references names no case",
    "GET /api/v1/cases/search": "a date range whose end is before its start (400)",
}
LAST = "DELETE /api/v1/tokens/{token_id}"  # may revoke the caller's own token


def settings_for(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


@dataclass
class Run:
    """What the passes saw: statuses per operation and pass, failures, counts."""

    statuses: dict[str, dict[str, set[int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    failures: list[tuple[str, str]] = field(default_factory=list)  # (what, details)
    responses: int = 0
    checks: Counter[str] = field(default_factory=Counter)

    def validate(self, case: Any, response: Any, checks: list[Any], headers: dict[str, str],
                 where: str, **transport: Any) -> None:
        label = label_of(case.operation)
        self.statuses[where][label].add(response.status_code)
        self.responses += 1
        self.checks.update(check.__name__ for check in checks)
        text = response.content.decode("utf-8", "replace")
        try:
            case.validate_response(response, checks=checks, headers=headers,
                                   transport_kwargs=transport or None)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.failures.append((f"[{where}] {label} → {response.status_code}: "
                                      f"{failure.title}", f"{failure.message[:400]} "
                                      f"| body: {text[:300]}"))
        assert_no_internals(text)

    def answered_2xx(self, *passes: str) -> list[str]:
        return sorted({label for where in passes for label, codes in self.statuses[where].items()
                       if any(200 <= code < 300 for code in codes)})


def label_of(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def allowed_roles(world: World, operation: Any) -> list[str]:
    """The roles whose permissions include the operation's (as its view declares it)."""
    path = re.sub(r"\{[^}]+\}", "1", operation.path)
    endpoint, _ = world.app.url_map.bind("localhost").match(path, operation.method.upper())
    permission = endpoint_permission(world.app.view_functions[endpoint])
    return [role for role in ROLES if permission in permissions_for([role])]


def fresh_tokens(world: World) -> dict[str, dict[str, str]]:
    """New bearer tokens for every role (a pass may have revoked the previous ones)."""
    headers = {}
    for role in (*ROLES, QUAL2):
        email = SECOND_QUALITY if role == QUAL2 else None
        secret = world.accounts.token(QUAL if role == QUAL2 else role, email=email)
        headers[role] = {"Authorization": f"Bearer {secret}"}
    return headers


def explore(run: Run, operation: Any, mode: GenerationMode, examples: int,
            headers: dict[str, str], where: str, checks: list[Any],
            path_parameters: dict[str, Any] | None = None) -> None:
    @settings_for(examples)
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def test(case: Any) -> None:
        response = case.call(headers=headers, buffered=True)
        run.validate(case, response, checks, headers, where)

    try:
        test()
    except Unsatisfiable:
        # Nothing of the operation can be made invalid (no parameters, no body).
        assert mode is GenerationMode.NEGATIVE, label_of(operation)
        assert not list(operation.iter_parameters()) and not operation.body, label_of(operation)


def checks_for(label: str, mode: GenerationMode) -> list[Any]:
    if mode is GenerationMode.NEGATIVE:
        return [*CONFORMANCE, negative_data_rejection]
    if label in ACCEPTANCE_EXEMPT:
        return CONFORMANCE
    return [*CONFORMANCE, positive_data_acceptance]


# -- pass 1: one valid request per operation --------------------------------------------------
# ``buffered=True`` (passed on to werkzeug's test client) closes each answer, as a WSGI server
# does: an audit package streams from a temporary file that closing removes.

class Walk:
    """Sends hand-made valid requests through schemathesis cases; each must answer 2xx."""

    def __init__(self, world: World, run: Run, operations: dict[str, Any],
                 headers: dict[str, dict[str, str]]) -> None:
        self.world, self.run, self.operations, self.headers = world, run, operations, headers

    def send(self, label: str, role: str, path: dict[str, Any] | None = None,
             body: Any = None, upload: dict[str, Any] | None = None) -> Any:
        operation = self.operations[label]
        if body is not None:
            case = operation.Case(path_parameters=path or {}, body=body,
                                  media_type="application/json")
        else:
            case = operation.Case(path_parameters=path or {})
        transport = {"data": upload} if upload is not None else {}
        response = case.call(headers=self.headers[role], buffered=True, **transport)
        self.run.validate(case, response, CONFORMANCE, self.headers[role], "valid", **transport)
        assert 200 <= response.status_code < 300, (label, role, response.status_code,
                                                   response.content[:400])
        media_type = response.headers.get("content-type", [""])[0]
        return (response.json() if media_type.startswith("application/json") and response.content
                else None)


def stl_upload(**fields: str) -> dict[str, Any]:
    return {"file": (io.BytesIO(binary_stl()), "design.stl"), **fields}


def walk_the_api(world: World, walk: Walk) -> dict[str, Any]:
    """Every operation once, valid, in an order that builds what the next one needs; returns
    the records the generated passes aim at."""
    send, cat = walk.send, world.catalogue
    for label in ("GET /api/v1/health", "GET /api/v1/me", "GET /api/v1/tokens",
                  "GET /api/v1/device-types", "GET /api/v1/sites", "GET /api/v1/notifications",
                  "GET /api/v1/envelopes", "GET /api/v1/installation-key"):
        send(label, CLIN)
    send("GET /api/v1/users", ADMIN)
    user = send("POST /api/v1/users", ADMIN, body={
        "email": "schemathesis@example.org", "printed_name": "Generated Reader",
        "password": "a long enough passphrase 42", "roles": ["engineer"]})
    assert user["roles"] == ["engineer"]
    token = send("POST /api/v1/tokens", ENG, body={"name": "to revoke"})
    send("DELETE /api/v1/tokens/{token_id}", ENG, {"token_id": token["id"]})

    # Envelopes: a draft for the custom-made type, changed, approved by another quality user.
    envelope = send("POST /api/v1/envelopes", QUAL, body={
        "device_type_id": cat["custom"], "definition": ENVELOPE})
    send("PATCH /api/v1/envelopes/{version_id}", QUAL, {"version_id": envelope["id"]},
         body={"definition": {**ENVELOPE, "max_faces": 50000}})
    send("POST /api/v1/envelopes/{version_id}/approve", QUAL2, {"version_id": envelope["id"]},
         body={"password": PASSWORD, "totp_code": world.fresh_code(SECOND_QUALITY)})

    # A custom-made case from draft to design, with every step on the way.
    case = send("POST /api/v1/cases", CLIN, body={**common(cat, "custom"), **CUSTOM_MADE})
    ids = {"case_id": case["id"]}
    send("GET /api/v1/cases", CLIN)
    send("PATCH /api/v1/cases/{case_id}/request", CLIN, ids, body={"side": "right"})
    attachment = send("POST /api/v1/cases/{case_id}/attachments", CLIN, ids,
                      upload=stl_upload(kind="model_3d", units="mm"))
    spare = send("POST /api/v1/cases/{case_id}/attachments", CLIN, ids,
                 upload=stl_upload(kind="model_3d", units="mm"))
    send("DELETE /api/v1/cases/{case_id}/attachments/{attachment_id}", CLIN,
         {**ids, "attachment_id": spare["id"]})
    send("POST /api/v1/cases/{case_id}/comments", CLIN, ids, body={"body": "Please hurry."})
    send("POST /api/v1/cases/{case_id}/submit", CLIN, ids, body={"password": PASSWORD})
    engineer = world.accounts.user(ENG)
    send("POST /api/v1/cases/{case_id}/assignee", QUAL, ids,
         body={"engineer_id": engineer.id})
    send("POST /api/v1/cases/{case_id}/transitions", ENG, ids, body={"to": "accepted"})
    send("POST /api/v1/cases/{case_id}/iterations", ENG, ids,
         upload=stl_upload(units="mm", notes="first design"))
    detail = send("GET /api/v1/cases/{case_id}", ENG, ids)
    item = detail["characteristic_confirmations"]["items"][0]["item"]
    send("POST /api/v1/cases/{case_id}/iterations/{number}/confirmations", ENG,
         {**ids, "number": 1}, body={"items": [{"item": item, "met": True}]})
    job = send("POST /api/v1/cases/{case_id}/iterations/{number}/verify", ENG,
               {**ids, "number": 1})
    send("GET /api/v1/cases/{case_id}/jobs/{job_id}", ENG, {**ids, "job_id": job["id"]})
    send("GET /api/v1/cases/{case_id}/attachments/{attachment_id}/content", CLIN,
         {**ids, "attachment_id": attachment["id"]})
    send("GET /api/v1/cases/search", QUAL)
    send("POST /api/v1/cases/{case_id}/package", QUAL, ids)
    send("POST /api/v1/packages", QUAL, body={"cases": [case["number"]]})

    # What the generated requests aim at: a draft with a file, a submitted case, the case in
    # design with its iteration and job, the approved envelope and a draft one.
    draft = world.draft_case()
    draft_file = send("POST /api/v1/cases/{case_id}/attachments", CLIN, {"case_id": draft},
                      upload=stl_upload(kind="model_3d", units="mm"))
    return {"draft": draft, "draft_file": draft_file["id"], "submitted": world.submitted_case(),
            "design": case["id"], "design_file": attachment["id"], "job": job["id"],
            "envelope": world.draft_envelope()}


# Which record a generated request aims at, per operation whose path names one.
DRAFT_OPERATIONS = {"PATCH /api/v1/cases/{case_id}/request",
                    "POST /api/v1/cases/{case_id}/attachments",
                    "DELETE /api/v1/cases/{case_id}/attachments/{attachment_id}",
                    "POST /api/v1/cases/{case_id}/submit"}
SUBMITTED_OPERATIONS = {"POST /api/v1/cases/{case_id}/transitions",
                        "POST /api/v1/cases/{case_id}/assignee"}


def record_parameters(label: str, records: dict[str, Any], role: str,
                      tokens: dict[str, int]) -> dict[str, Any]:
    case = ("draft" if label in DRAFT_OPERATIONS else
            "submitted" if label in SUBMITTED_OPERATIONS else "design")
    values: dict[str, Any] = {
        "case_id": records[case],
        "attachment_id": records["draft_file" if case == "draft" else "design_file"],
        "number": 1, "job_id": records["job"], "version_id": records["envelope"],
        "token_id": tokens.get(role)}
    return {name: values[name] for name in re.findall(r"\{([^}]+)\}", label)}


def spare_tokens(world: World, headers: dict[str, dict[str, str]]) -> dict[str, int]:
    """A token of each role that its generated DELETE may revoke."""
    client = world.app.test_client()
    ids = {}
    for role in ROLES:
        answer = client.post("/api/v1/tokens", headers=headers[role], json={"name": "spare"})
        assert answer.status_code == 201, answer.get_json()
        ids[role] = int(answer.get_json()["id"])
    return ids


def test_openapi_conformance_authenticated(world: World) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", world.app)
    operations = sorted((result.ok() for result in schema.get_all_operations()),
                        key=lambda op: label_of(op) == LAST)
    by_label = {label_of(op): op for op in operations}
    assert len(operations) >= 30, sorted(by_label)
    assert set(ACCEPTANCE_EXEMPT) <= set(by_label), set(ACCEPTANCE_EXEMPT) - set(by_label)
    roles = {label: allowed_roles(world, op) for label, op in by_label.items()}
    run = Run()

    # 1. One valid request per operation.
    records = walk_the_api(world, Walk(world, run, by_label, fresh_tokens(world)))
    assert run.answered_2xx("valid") == sorted(by_label), \
        set(by_label) - set(run.answered_2xx("valid"))

    # 2. Generated requests, every role.
    headers = fresh_tokens(world)
    for role in ROLES:
        for operation in operations:
            label = label_of(operation)
            examples = FUZZ_EXAMPLES if role in roles[label] else REFUSED_EXAMPLES
            explore(run, operation, GenerationMode.POSITIVE, examples, headers[role],
                    "generated", checks_for(label, GenerationMode.POSITIVE))

    # 3. Requests that break the document, the first role allowed.
    headers = fresh_tokens(world)
    for operation in operations:
        label = label_of(operation)
        role = roles[label][0] if roles[label] else CLIN
        explore(run, operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, headers[role],
                "negative", checks_for(label, GenerationMode.NEGATIVE))

    # 4. Generated requests against the records of pass 1.
    headers = fresh_tokens(world)
    tokens = spare_tokens(world, headers)
    for role in ROLES:
        for operation in operations:
            label = label_of(operation)
            if not operation.path_parameters or role not in roles[label]:
                continue
            explore(run, operation, GenerationMode.POSITIVE, RECORD_EXAMPLES, headers[role],
                    "records", checks_for(label, GenerationMode.POSITIVE),
                    record_parameters(label, records, role, tokens))

    generated = run.answered_2xx("generated", "negative", "records")
    print(f"\nschemathesis: {len(operations)} operations; valid requests: "
          f"{len(run.answered_2xx('valid'))} answered 2xx; generated: {len(generated)} "
          f"answered 2xx; {run.responses} responses checked; checks run: "
          + ", ".join(f"{name} ×{count}" for name, count in sorted(run.checks.items())))
    print("generated 2xx:", generated)
    for where, seen in run.statuses.items():
        for label in sorted(seen):
            print(f"  {where:9} {label}: {sorted(seen[label])}")
    kinds = Counter(what for what, _ in run.failures)
    assert not run.failures, "\n".join(
        [f"{count} × {what}" for what, count in sorted(kinds.items())]
        + ["first of each:"] + [f"{what}: {details}" for what, details
                                in dict(reversed(run.failures)).items()])
    assert len(generated) >= MIN_OPERATIONS_2XX, (len(generated), generated)

