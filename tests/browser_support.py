"""A real browser for functional tests: Debian's chromium, headless, driven by Playwright for
Python (``executable_path``: no browser download), against the app served on a free localhost
port in a thread. Import the fixtures into a test module:
``from tests.browser_support import browser, live_server  # noqa: F401``.

scripts/test installs chromium when it is missing (scripts/chromium-for-tests).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, sync_playwright
from werkzeug.serving import make_server

CHROMIUM = os.environ.get("PDM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--use-angle=swiftshader",
                 "--enable-unsafe-swiftshader", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Bounds of the waits (ms): SwiftShader renders on the CPU of a shared machine.
LOAD_BOUND_MS = 120_000


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="browser-test-server",
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=30)
        server.server_close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[BrowserContext]:
    assert Path(CHROMIUM).is_file(), (
        f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium); "
        "scripts/test does it when run as root")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 1000},
            device_scale_factor=1)
        try:
            yield context
        finally:
            context.close()
