"""Hostile files through every upload: meshes that lie, zip bombs, odd names (``hostile_files``).

Each refusal is a 4xx naming the ``file`` field (the case page's message for the browser forms),
stores no object and writes no row; each accepted name is kept as its base name only and shown
escaped.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from markupsafe import escape

from tests.hostile.conftest import CLIN, ENG, World, assert_no_internals
from tests.hostile.hostile_files import FILE_BY_ID, MESH_FILES
from tests.hostile.matrix import ENTRY_BY_ID
from tests.hostile.runner import send

UPLOADS = ("api.add_attachment", "api.add_iteration", "web.upload", "web.upload_iteration")
CASES = [(entry, f.id) for entry in UPLOADS for f in MESH_FILES]


def _send_raw_multipart(world: World, entry_id: str, url: str, data: bytes, name: str) -> Any:
    """A large multipart body built in memory (the test client would spool it to a temporary
    file it never closes)."""
    boundary = "hostile-boundary"
    role = ENTRY_BY_ID[entry_id].role
    fields = {"units": "mm", "kind": "model_3d"}
    if not entry_id.startswith("api."):
        fields["csrf_token"] = world.csrf(role)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
             .encode() for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                 .encode() + data + f"\r\n--{boundary}--\r\n".encode())
    client = world.app.test_client() if entry_id.startswith("api.") else world.web(role)
    headers = world.api(role) if entry_id.startswith("api.") else {}
    return client.post(url, data=b"".join(parts), headers=headers,
                       content_type=f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize(("entry_id", "file_id"), CASES, ids=[f"{e}-file-{f}" for e, f in CASES])
def test_upload(world: World, entry_id: str, file_id: str) -> None:
    entry, hostile = ENTRY_BY_ID[entry_id], FILE_BY_ID[file_id]
    target = entry.prepare(world)
    content_type = "image/png" if file_id == "wrong_part_content_type" else None
    data = hostile.make()
    before = world.counts()
    if hostile.status == 413:
        response = _send_raw_multipart(world, entry_id, target.url, data, hostile.name)
    else:
        body = {**target.body, "file": lambda: (io.BytesIO(data), hostile.name, content_type)}
        response = send(world, entry, target, body)
    text = response.get_data(as_text=True)
    assert_no_internals(text)
    web = not entry_id.startswith("api.")
    role = CLIN if entry_id.endswith("attachment") or entry_id == "web.upload" else ENG
    case_url = f"/cases/{target.ref['case_id']}"
    if hostile.status >= 400:
        assert world.counts() == before, "a refused upload changed rows or objects"
        if web and hostile.status == 413:
            assert response.status_code == 413 and "1 MiB" in text
        elif web:
            assert response.status_code == 302, response.status_code
            page = world.page(role, case_url)
            assert "flash-error" in page and "file" in page.lower()
        elif hostile.status == 413:  # the whole request is refused before any field is read
            assert response.status_code == 413 and "1 MiB" in response.get_json()["message"]
        else:
            assert response.status_code == hostile.status, (response.status_code, text[:400])
            assert "file" in response.get_json()["field_errors"], text[:400]
        assert hostile.name not in text or hostile.name.isascii()
        return
    assert response.status_code == (302 if web else 201), (response.status_code, text[:400])
    view = world.case_view(target.ref["case_id"], ENG if role == ENG else CLIN)
    if "iteration" in entry_id:
        stored = view["design_iterations"][-1]["original_name"]
    else:
        stored = view["revisions"][-1]["attachments"][-1]["original_name"]
    assert stored == hostile.stored_name
    page = world.page(role, case_url)
    assert str(escape(stored)) in page
    if str(escape(stored)) != stored:
        assert stored not in page
