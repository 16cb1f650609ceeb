"""The 3D viewer renders in a real browser: Debian's chromium, headless, WebGL through SwiftShader.

The app runs on a free localhost port in a thread; a clinician signs in and opens a verified
design iteration; the module reports ``data-state="rendered"`` after its first frame (waited
for with a bound); the canvas screenshot must show the part in the thickness colours (the
warning colour where the wall is under the envelope minimum, the ramp elsewhere). The same
session checks the messages shown when WebGL is missing and when the GLB cannot be read.

Chromium comes from Debian (``apt-get install chromium``; scripts/test installs it when
missing) and is driven by Playwright for Python with ``executable_path`` (no browser download).
Set PDM_VIEWER_SCREENSHOT=docs/images/viewer.png to keep the page screenshot.
"""

from __future__ import annotations

import colorsys
import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from PIL import Image
from playwright.sync_api import BrowserContext, Page

from tests.browser_support import LOAD_BOUND_MS
from tests.conftest import PASSWORD, Accounts
from tests.viewer_support import case_with_iteration, graded_plate, stl

SETTLED = "el => el.dataset.state !== 'loading'"


@pytest.fixture
def config_overrides() -> dict[str, Any]:
    return {"PDM_MAX_UPLOAD_MB": 8, "MAX_CONTENT_LENGTH": 8 * 1024 * 1024}


def _sign_in(page: Page, base: str, email: str) -> None:
    page.goto(base + "/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url, timeout=LOAD_BOUND_MS)


def _open_viewer(page: Page, url: str) -> str:
    page.goto(url)
    viewer = page.locator("[data-pdm-viewer]")
    viewer.evaluate(f"el => new Promise((resolve, reject) => {{"
                    f" const t0 = Date.now();"
                    f" (function poll() {{ if (({SETTLED})(el)) resolve();"
                    f"  else if (Date.now() - t0 > {LOAD_BOUND_MS}) reject(new Error('timeout'));"
                    f"  else setTimeout(poll, 100); }})(); }})")
    return str(viewer.get_attribute("data-state"))


def _hsv(pixels: np.ndarray) -> np.ndarray:
    flat = pixels.reshape(-1, 3) / 255.0
    return np.array([colorsys.rgb_to_hsv(*p) for p in flat])


def test_the_viewer_renders_the_thickness_colours_in_headless_chromium(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], live_server: str,
        browser: BrowserContext) -> None:
    # A curved plate 3.5 mm thick in the middle, 0.7 mm at the rim; the envelope minimum
    # is 1 mm.
    case = case_with_iteration(app, accounts, catalogue,
                               stl(*graded_plate(rings=48, sectors=224)))
    clinician = accounts.user("clinician")
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    _sign_in(page, live_server, clinician.email)

    url = f"{live_server}/cases/{case['id']}/iterations/1"
    state = _open_viewer(page, url)
    message = page.locator("[data-viewer-message]").text_content()
    assert state == "rendered", (state, message, problems)
    assert not problems, problems  # no CSP violation, no script error

    canvas = page.locator("canvas.viewer-canvas")
    box = canvas.bounding_box()
    assert box is not None and box["width"] > 400 and box["height"] > 300
    shot = canvas.screenshot()
    if os.environ.get("PDM_VIEWER_CANVAS"):
        Path(os.environ["PDM_VIEWER_CANVAS"]).write_bytes(shot)
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    # Not blank: the part covers a good share of the canvas in many shades.
    background = np.array([0xF3, 0xF5, 0xF7])
    part = np.abs(image.astype(int) - background).sum(axis=2) > 30
    assert part.mean() > 0.10, f"only {part.mean():.1%} of the canvas differs from the background"
    assert len(np.unique(image[part].reshape(-1, 3), axis=0)) > 50
    # The thickness colours: the warning colour (crimson, hue ~340 deg) on the thin rim and
    # the yellow-green-blue ramp (hue 40-260 deg) on the rest.
    hsv = _hsv(image[part])
    hue, sat = hsv[:, 0] * 360, hsv[:, 1]
    warning = (sat > 0.5) & ((hue > 320) | (hue < 5))
    ramp = (sat > 0.35) & (hue > 40) & (hue < 260)
    assert warning.mean() > 0.02, f"warning colour on {warning.mean():.2%} of the part"
    assert ramp.mean() > 0.30, f"ramp colours on {ramp.mean():.2%} of the part"
    assert len({int(h // 30) for h in hue[ramp]}) >= 3  # several bands, not one colour

    legend = page.locator("[data-viewer-legend]")
    assert "Envelope minimum: 1 mm" in str(legend.text_content())
    assert page.locator("[data-viewer-legend] li").count() >= 4
    markers = page.locator("[data-viewer-markers] li")
    assert markers.count() >= 1 and "thinnest sampled wall" in str(markers.first.text_content())
    keep = os.environ.get("PDM_VIEWER_SCREENSHOT")
    if keep:
        page.screenshot(path=keep)
    markers.first.locator("button").click()  # focuses the camera on the marker: no error
    page.wait_for_timeout(200)
    assert not problems, problems
    page.close()


def test_the_viewer_says_so_when_webgl_is_missing_or_the_glb_is_broken(
        app: Flask, accounts: Accounts, catalogue: dict[str, int], live_server: str,
        browser: BrowserContext) -> None:
    case = case_with_iteration(app, accounts, catalogue, stl(*graded_plate(rings=6, sectors=24)))
    url = f"{live_server}/cases/{case['id']}/iterations/1"
    page = browser.new_page()
    _sign_in(page, live_server, accounts.user("engineer").email)

    no_webgl = browser.new_page()
    # As in a browser with WebGL switched off: every WebGL context request fails.
    no_webgl.add_init_script("""(() => { const original = HTMLCanvasElement.prototype.getContext;
      HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
        return /webgl/.test(kind) ? null : original.call(this, kind, ...rest); }; })();""")
    assert _open_viewer(no_webgl, url) == "no-webgl"
    text = str(no_webgl.locator("[data-viewer-message]").text_content())
    assert "WebGL 2 is unavailable" in text and no_webgl.locator(
        "[data-viewer-message]").is_visible()
    assert no_webgl.locator("canvas.viewer-canvas").count() == 0

    def broken(route: Any) -> None:
        route.fulfill(status=200, content_type="model/gltf-binary", body=b"not a glb file")

    page.route("**/preview.glb", broken)
    assert _open_viewer(page, url) == "error"
    text = str(page.locator("[data-viewer-message]").text_content())
    assert text.startswith("The 3D preview could not be loaded:")
    assert page.locator("[data-viewer-message]").get_attribute("role") == "alert"

    page.unroute("**/preview.glb")
    page.route("**/preview.glb", lambda route: route.fulfill(status=503, body=b"down"))
    assert _open_viewer(page, url) == "error"
    assert "cannot read the design right now" in str(
        page.locator("[data-viewer-message]").text_content())
