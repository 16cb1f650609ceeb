"""The human-readable report of an audit package, in HTML and PDF (21 CFR Part 11 §11.10(b)).

Both renderings come from the same list of sections, so they say the same thing. The PDF is made
with fpdf2 and declared PDF/A-2B (XMP metadata, sRGB output intent, embedded font) when a
Unicode TrueType font (DejaVu Sans) is found; otherwise it is a plain PDF 1.7 with the core
Helvetica font and says so. docs/audit-package.md states how far the PDF/A claim goes.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
)

Section = tuple[str, list[str], list[list[str]]]  # title, column headings, rows


def _text(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return str(value)


def sections(context: dict[str, Any]) -> list[Section]:
    """The report's content: per case its facts, revisions and files, design iterations and
    verification reports, signatures (§11.50 manifestation), workflow history and audit
    events with before/after values in time order; then the envelopes and the chain span."""
    out: list[Section] = []
    key = context["key"]
    out.append(("Package", ["", ""], [
        ["Installation", context["site_name"]], ["Created (UTC)", context["created_at"]],
        ["Signing key fingerprint", key.fingerprint], ["Public key (Ed25519, base64)", key.base64],
        ["Verify", "python verify_package.py THIS.zip --public-key <the key above, "
                   "obtained from the manufacturer>"]]))
    events_by_case: dict[int, list[dict[str, Any]]] = {}
    for event in context["events"]:
        events_by_case.setdefault(event["case_id"], []).append(event)
    for case in context["cases"]:
        number = case["number"]
        out.append((f"Case {number}", ["", ""], [
            ["Status", case["status"]], ["Patient code (pseudonymous)", case["patient_code"]],
            ["Device type", f"{case['device_type']['name']} ({case['device_type']['category']}"
                            f"{', implantable' if case['device_type']['implantable'] else ''})"],
            ["Institution", case["institution"]],
            ["Prescriber", f"{case['prescriber']['printed_name']} "
                           f"({case['prescriber']['registration_number'] or '–'})"],
            ["Created", _text(case["created_at"])], ["Released", _text(case["released_at"])],
            ["Delivered on", _text(case["delivered_on"])],
            ["Retain until", _text(case["retain_until"])]]))
        rows = []
        for revision in case["revisions"]:
            rows.append([f"r{revision['revision']}", revision["status"],
                         _text(revision["created_at"]), revision["created_by"],
                         revision["content_sha256"] or "–", _text(revision["content"])])
            for attachment in revision["attachments"]:
                rows.append(["", f"file {attachment['kind']}", attachment["original_name"],
                             f"{attachment['size']} bytes, version "
                             f"{attachment['storage_version_id'] or '-'}",
                             attachment["sha256"], attachment["path"]])
        out.append((f"{number}: request revisions and attachments",
                    ["Rev.", "Status", "Created / name", "By / size", "SHA-256", "Content / path"],
                    rows))
        rows = []
        for iteration in case["iterations"]:
            rows.append([str(iteration["number"]), iteration["original_name"],
                         f"{iteration['size']} bytes", iteration["sha256"], iteration["path"]])
            for report in iteration["reports"]:
                rows.append(["", f"verification report {report['id']}",
                             "PASSED" if report["passed"] else "FAILED",
                             report["report_sha256"],
                             f"envelope version id {report['envelope_version_id']} "
                             f"(sha256 {report['envelope_sha256']})"])
        out.append((f"{number}: design iterations and verification",
                    ["No.", "File / report", "Size / result", "SHA-256", "Path / envelope"], rows))
        out.append((f"{number}: signatures (21 CFR Part 11 §11.50)",
                    ["Meaning", "Printed name", "Signed at (UTC)", "Record", "Content SHA-256",
                     "Binding SHA-256"],
                    [[s["meaning"], s["printed_name"], _text(s["signed_at"]),
                      f"{s['target_type']} {s['target_id']}", s["content_sha256"],
                      s["binding_sha256"]] for s in case["signatures"]]))
        out.append((f"{number}: workflow history", ["At", "From", "To", "By", "Reason"],
                    [[_text(h["at"]), h["from"] or "–", h["to"], h["by"], h["reason"] or ""]
                     for h in case["history"]]))
        out.append((f"{number}: audit trail",
                    ["Seq", "At (UTC)", "Actor", "Action", "Target", "Before", "After", "Hash"],
                    [[str(e["seq"]), e["occurred_at"], e["actor_label"], e["action"],
                      f"{e['target_type']} {e['target_id'] or ''}", _text(e["before"]),
                      _text(e["after"]), e_hash(e)]
                     for e in events_by_case.get(case["id"], [])]))
    out.append(("Envelope versions used", ["Id", "Device type", "Version", "Status",
                                           "Content SHA-256", "Approved at"],
                [[str(e["id"]), str(e["device_type_id"]), str(e["version"]), e["status"],
                  e["content_sha256"] or "–", _text(e["approved_at"])]
                 for e in context["envelopes"]]))
    point = context["checkpoint"]
    out.append(("Audit chain", ["", ""], [
        ["Span in the package", f"events {context['span'][0]} to {context['span'][1]}; other "
                                "cases' events appear only as (seq, hash)"],
        ["Checkpoint (write-once storage)",
         "none" if point is None else f"event {point['seq']} = {point['hash']} "
                                      f"(taken {point['created_at']})"]]))
    return out


def e_hash(event: dict[str, Any]) -> str:
    return str(event["hash"])


def render_html(context: dict[str, Any]) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
             f"<title>Audit package {esc(', '.join(c['number'] for c in context['cases']))}"
             "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:"
             "collapse;margin-bottom:1.5em}td,th{border:1px solid #999;padding:3px 6px;"
             "vertical-align:top;font-size:12px;word-break:break-all}th{background:#eee}"
             "</style></head><body>",
             f"<h1>Audit package: {esc(', '.join(c['number'] for c in context['cases']))}</h1>",
             "<p>Generated by pdm-records. Every file in this package is listed with its "
             "SHA-256 in manifest.json, which is signed (manifest.sig) with the installation's "
             "Ed25519 key. Run <code>python verify_package.py</code> on the ZIP to check it."
             "</p>"]
    for title, headings, rows in sections(context):
        parts.append(f"<h2>{esc(title)}</h2><table>")
        if any(headings):
            parts.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in headings) + "</tr>")
        if not rows:
            parts.append(f"<tr><td colspan='{max(len(headings), 1)}'>none</td></tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{esc(cell)}</td>" for cell in row) + "</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def find_font() -> Path | None:
    for candidate in FONT_CANDIDATES:
        path = Path(candidate)
        if path.is_file():
            return path
    return None


def render_pdf(context: dict[str, Any]) -> bytes:
    from fpdf import FPDF
    from fpdf.enums import WrapMode

    font = find_font()
    numbers = ", ".join(c["number"] for c in context["cases"])
    if font is not None:
        pdf = FPDF(orientation="L", format="A4", enforce_compliance="PDF/A-2B")
        pdf.add_font("DejaVu", "", str(font))
        family = "DejaVu"
    else:
        pdf = FPDF(orientation="L", format="A4")
        family = "Helvetica"

    def clean(text: str) -> str:
        return text if font is not None else text.encode("latin-1", "replace").decode("latin-1")

    pdf.set_title(f"Audit package {numbers}")
    pdf.set_author(context["site_name"])
    pdf.set_creator("pdm-records")
    pdf.set_creation_date(_parse(context["created_at"]))
    pdf.set_auto_page_break(True, margin=12)
    pdf.add_page()
    pdf.set_font(family, size=14)
    pdf.multi_cell(0, 8, clean(f"Audit package: {numbers}"), new_x="LMARGIN", new_y="NEXT")
    if font is None:
        pdf.set_font(family, size=8)
        pdf.multi_cell(0, 5, "Note: no Unicode font was found on the exporting server; this PDF "
                       "is not PDF/A. report.html has the same content.",
                       new_x="LMARGIN", new_y="NEXT")
    for title, headings, rows in sections(context):
        pdf.set_font(family, size=11)
        pdf.ln(2)
        pdf.multi_cell(0, 6, clean(title), new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(family, size=7)
        if not rows:
            pdf.multi_cell(0, 4, "none", new_x="LMARGIN", new_y="NEXT")
        for row in rows:
            labelled = [f"{h}: {c}" if h else c for h, c in zip(headings, row, strict=False)]
            text = "  |  ".join(x for x in labelled if x)
            pdf.multi_cell(0, 4, clean(text[:4000]), new_x="LMARGIN", new_y="NEXT",
                           wrapmode=WrapMode.CHAR)
            pdf.ln(0.5)
    return bytes(pdf.output())


def _parse(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
