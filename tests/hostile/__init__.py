"""The hostile-input campaign (issue #7 point 3; DOMAIN.md §8, STYLE §5): input class × entry point.

Modules
-------
``matrix.py``            the tables: ``ENTRY_POINTS`` (every form and API operation that takes
                         input) and ``FIELD_CLASSES`` with the outcome rule ``expected_outcome``.
``test_fields_api.py``   every field × class for the JSON API
                         (ids like ``api.create_case-anatomical_site-rtl_mark``).
``test_fields_web.py``   the same for the HTML forms.
``test_requests.py``     whole-request classes (malformed/nested JSON, wrong content types,
                         bad UTF-8, oversized bodies, missing or foreign CSRF) and duplicates.
``test_uploads.py``      hostile files (``hostile_files.py``) through every upload.
``test_completeness.py`` fails when a state-changing route is neither in ``ENTRY_POINTS`` nor in
                         its ``EXEMPT`` table with a reason.
``test_mesh_loader_property.py``  hypothesis: bytes → mesh or ``MeshError``, nothing else.
``test_schemathesis.py`` the OpenAPI document, authenticated per role: zero 5xx, a minimum of
                         operations answering 2xx.

Every case asserts: the status (4xx when a stated rule is broken, else the entry's success
status), the error names the field (JSON ``field_errors``; the form's ``id="<field>-error"``; the
flash message of forms that redirect), row and object counts unchanged on refusal, no stack trace,
and no markup echoed unescaped; accepted values are stored verbatim and shown HTML-escaped.

Adding an entry point (a new route)
-----------------------------------
1. Write a ``prepare`` function in ``matrix.py`` that builds the record the route acts on with the
   ``World`` helpers (``draft_case``, ``submitted_case``, ``accepted_case``, ``designed_case``,
   ``draft_envelope`` …; add one there if needed) and returns ``Target(url, valid_body, ref)``.
2. Add one ``EntryPoint`` row: id (``api.<name>`` or ``web.<name>``), Flask endpoint, method,
   role, body kind (``json`` | ``form`` | ``multipart``), ``prepare``, the fields with their kind
   (``Field(LINE, 200)``, ``Field(TEXT, 5000)``, ``Field(CHOICE)``, …), the success status, and
   optionally ``stored`` (reads a field back) and ``shown_at`` (the page that shows it).
   A route with no input at all goes into ``EXEMPT`` in ``test_completeness.py`` with its reason.
3. Uploads: add the entry's id to ``UPLOADS`` in ``test_uploads.py``; duplicate rules to
   ``DUPLICATES`` in ``test_requests.py``. Every field, request and file class then runs on it.

Speed: each module builds one application (``conftest.world``, module-scoped) and each case makes
only the records it attacks, so ~1,000 cases stay within a few minutes on two workers.
"""
