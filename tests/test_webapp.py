"""The web app at / in a real headless browser (Debian's chromium, driven by playwright's Python
client; no browser is downloaded): it loads clean and offline, an upload of a demo-world photo
draws its footprint, a refused upload and a wrong API key are shown as such, star-ID answers on
its sky chart. Each test runs the API as a real HTTP server (uvicorn) on a free port.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from scripts.screenshots import CHROMIUM, OVERLAY_LOADED_JS, launch_chromium
from tests.conftest import REPO_ROOT

WEB_DIST = REPO_ROOT / "frontend" / "dist"


def _missing(message: str) -> None:
    """What the browser tests need is installed by `make test`: in CI its absence is a failure."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def built_frontend() -> Path:
    if not (WEB_DIST / "index.html").is_file():
        if shutil.which("npm") is None:
            _missing("frontend/dist is not built and npm is absent (make install builds it)")
        subprocess.run("npm ci --no-audit --no-fund && npm run build", shell=True, check=True,
                       cwd=REPO_ROOT / "frontend", stdout=subprocess.DEVNULL)
    return WEB_DIST


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).is_file():
        _missing(f"{CHROMIUM} is absent (scripts/dev_services.sh installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright Python client is absent (pip install -e '.[test]')")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


@contextmanager
def live_server(settings) -> Iterator[str]:  # noqa: ANN001
    """The API of ``settings`` served by uvicorn in a thread; yields its base URL."""
    import uvicorn

    from service.api.main import create_app
    from service.cli.demo import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class Page:
    """A browser page that records console errors, page errors and every request's URL."""

    def __init__(self, browser, base: str) -> None:  # noqa: ANN001
        self.base = base
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, fragment: str = "") -> Page:
        self.page.goto(f"{self.base}/{fragment}")
        self.page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        return self

    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(self.base) and not u.startswith(("data:", "blob:"))]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser, built_frontend):
    pages: list[Page] = []

    def open_(base: str, fragment: str = "") -> Page:
        pages.append(Page(browser, base).open(fragment))
        return pages[-1]

    yield open_
    for page in pages:
        page.close()


def _upload(page, image: Path, **fields: str) -> None:  # noqa: ANN001
    page.click("#tabs button[data-tab=upload]")
    page.set_input_files("#upload-file", str(image))
    for selector, value in fields.items():
        page.fill(f"#upload-{selector}", value)
    page.click("#upload-submit")


# --- the tests ----------------------------------------------------------------------------------


def test_page_loads_with_no_console_error_and_no_external_request(localize_world, tmp_path, open_page):
    settings = localize_world(data_dir=tmp_path / "var")
    with live_server(settings) as base:
        view = open_page(base)
        page = view.page
        # The basemap comes from the service's own tile database.
        page.wait_for_function("document.querySelectorAll('img.leaflet-tile-loaded').length >= 4", timeout=30_000)
        tiles = [u for u in view.requests if "/tiles/" in u and u.endswith(".jpg")]
        assert tiles and all(u.startswith(f"{base}/tiles/") for u in tiles)
        assert page.inner_text("#footprint-count") == "0 footprints in view"
        assert page.is_hidden("#key-form")  # no keys on this service: nothing to ask
        # Fields are offered only when this service's API takes them (read from /openapi.json).
        spec = page.request.get(f"{base}/openapi.json").json()
        form = spec["components"]["schemas"]["LocalizeForm"]["properties"]
        assert page.is_disabled("#upload-focal") == (not any("focal" in name for name in form))
        star_id_images = [p for p, item in spec["paths"].items() if p.startswith("/star-id") and "post" in item
                          and "multipart/form-data" in item["post"].get("requestBody", {}).get("content", {})]
        assert (page.get_attribute("#starid-image-row", "hidden") is not None) == (not star_id_images)
        page.wait_for_timeout(500)  # late tile or footprint requests
        assert view.errors == []
        assert view.external_requests() == []
        assert page.inner_text("#messages") == ""
        # The API stays at its paths.
        assert page.request.get(f"{base}/docs").ok
        assert page.request.get(f"{base}/health").json()["status"] in ("ok", "degraded")


def test_uploading_a_demo_world_photo_draws_its_footprint(localize_world, tmp_path, open_page):
    from shapely.geometry import shape

    from geo import footprint_iou
    from tests.test_localize import _held_out

    settings = localize_world(data_dir=tmp_path / "var")
    photo = _held_out(settings)[0]
    with live_server(settings) as base:
        view = open_page(base)
        page = view.page
        _upload(page, photo.image_path, time=photo.capture_time, **{"photo-id": photo.photo_id})
        # Search region, candidate tiles and ISS position are drawn as soon as POST /localize answers.
        page.wait_for_selector(".iss-position", timeout=60_000)
        assert page.query_selector("path.search-region") is not None
        assert len(page.query_selector_all("path.candidate-tile")) >= 1
        page.wait_for_selector("#upload-status[data-state=localized], #upload-status[data-state=not-localized]",
                               timeout=settings.job_timeout_s * 1000)
        outcome = page.inner_text("#upload-outcome")
        assert page.get_attribute("#upload-status", "data-state") == "localized", outcome
        assert page.eval_on_selector("#upload-progress", "p => p.value") == 1
        assert "candidate" in page.inner_text("#upload-progress-label")
        # The footprint is drawn, the photo warped onto the map, the photo's page shown.
        page.wait_for_selector("path.footprint", timeout=10_000)
        page.wait_for_function(OVERLAY_LOADED_JS, timeout=30_000)
        assert page.get_attribute("#photo-details", "data-photo-id") == photo.photo_id
        table = page.inner_text("#photo-table")
        assert "km²" in table and "confidence" in table
        links = page.eval_on_selector_all("#photo-links a", "links => links.map(a => [a.textContent, a.href])")
        assert [text for text, _ in links] == ["JSON", "GeoJSON", "PNG", "job"]
        for _text, href in links:
            assert page.request.get(href).ok, href
        job = page.request.get(dict(links)["job"]).json()
        assert job["status"] == "finished" and job["result"]["localized"] is True
        if job["result"].get("corner_uncertainty_km"):
            assert "corner uncertainty" in table and " km" in table
        geojson = page.request.get(dict(links)["GeoJSON"]).json()
        drawn = shape(geojson["features"][0]["geometry"])
        assert footprint_iou(drawn, photo.truth) >= 0.5
        assert view.errors == [] and view.external_requests() == []

        # The photo's page by its link: the footprint is among those loaded by bbox.
        again = open_page(base, f"#photo={photo.photo_id}").page
        again.wait_for_selector("img.photo-overlay", timeout=30_000)
        again.wait_for_function("Number(document.querySelector('#footprint-count').dataset.count) >= 1", timeout=30_000)
        assert again.get_attribute("#photo-details", "data-photo-id") == photo.photo_id


def test_a_refused_upload_shows_its_message(sqlite_settings, tmp_path, open_page):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are notes, not a photo")
    from tests.test_localize import _jpeg

    photo = tmp_path / "small.jpg"
    photo.write_bytes(_jpeg())
    with live_server(sqlite_settings) as base:
        page = open_page(base).page
        _upload(page, not_an_image)
        page.wait_for_selector("#upload-status[data-state=refused]", timeout=30_000)
        assert "415" in page.inner_text("#upload-outcome") and "not an image" in page.inner_text("#upload-outcome")

        page.fill("#upload-time", "yesterday")
        page.set_input_files("#upload-file", str(photo))
        page.click("#upload-submit")
        page.wait_for_function("document.querySelector('#upload-outcome').textContent.includes('422')", timeout=30_000)
        assert "timestamp" in page.inner_text("#upload-outcome")
        assert page.query_selector(".iss-position") is None
    from tests.test_localize import _photo_count

    assert _photo_count(sqlite_settings) == 0


def test_with_api_keys_a_wrong_key_is_shown_as_such(sqlite_settings, tmp_path, open_page):
    from tests.test_localize import _jpeg
    from tests.test_webapp_api import _store_photo

    photo = tmp_path / "small.jpg"
    photo.write_bytes(_jpeg())
    settings = sqlite_settings.model_copy(update={"api_keys": ["right-key"]})
    _store_photo(settings, tmp_path, [(10, 30), (20, 30), (20, 42), (10, 42)])
    with live_server(settings) as base:
        page = open_page(base).page
        assert page.is_visible("#key-form")
        assert "only with an API key" in page.inner_text("#messages")  # reads are not public here
        page.fill("#key-input", "wrong-key")
        page.click("#key-form button")
        page.wait_for_selector("#key-state[data-state=error]", timeout=10_000)
        assert page.inner_text("#key-state") == "wrong API key"
        assert "wrong API key" in page.inner_text("#messages")
        assert page.evaluate("sessionStorage.getItem('astroloc.apiKey')") is None

        # A key kept from earlier in the session that the service now refuses: told at upload.
        page.evaluate("sessionStorage.setItem('astroloc.apiKey', 'stale-key')")
        _upload(page, photo)
        page.wait_for_selector("#upload-status[data-state=refused]", timeout=30_000)
        assert "401" in page.inner_text("#upload-outcome") and "wrong API key" in page.inner_text("#upload-outcome")

        page.fill("#key-input", "right-key")
        page.click("#key-form button")
        page.wait_for_selector("#key-state[data-state=ok]", timeout=10_000)
        assert page.evaluate("sessionStorage.getItem('astroloc.apiKey')") == "right-key"
        page.wait_for_function("document.querySelector('#footprint-count').dataset.count === '1'", timeout=10_000)
        # Kept for the browser session: a reload does not ask again; the photo's page, its
        # overlay image included, is read with the key.
        page.goto(f"{base}/#photo=P1")
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text("#key-state") == "key set"
        page.wait_for_function(OVERLAY_LOADED_JS, timeout=30_000)
        assert page.get_attribute("img.photo-overlay", "src").startswith("blob:")
        assert page.get_attribute("#photo-details", "data-photo-id") == "P1"


def test_star_id_shows_the_attitude_and_the_identified_stars(sqlite_settings, open_page, tmp_path):
    import json

    import cv2
    import numpy as np

    from starid import build_catalog
    from starid.simulate import build_sky, render_frame, simulate_scene

    catalog = build_catalog()
    rng = np.random.default_rng(7)
    frame = next(f for f in (simulate_scene(catalog, rng, position_noise_px=0.5) for _ in range(20)) if len(f.pixels) >= 8)
    body = {"stars": [{"x": float(x), "y": float(y), "mag": float(m)} for (x, y), m in zip(frame.pixels, frame.mags, strict=True)],
            "image_width": 1024, "image_height": 1024, "fov_deg": 14.0}
    with live_server(sqlite_settings) as base:
        page = open_page(base, "#tab=starid").page
        assert page.input_value("#starid-json").strip().startswith("{")  # the API's example
        page.fill("#starid-json", json.dumps(body))
        page.click("#starid-form button[type=submit]")
        page.wait_for_selector("#starid-result.localized, #starid-result.not-localized, #starid-result.refused", timeout=180_000)
        text = page.inner_text("#starid-result")
        assert "status: identified" in text and "boresight RA" in text, text
        labels = page.eval_on_selector_all("#sky text.hip", "t => t.map(e => e.textContent)")
        truth = {f"HIP {int(h)}" for h in frame.hip if h > 0}
        assert len(labels) >= 3 and set(labels) <= truth

        page.fill("#starid-json", "{not json")
        page.click("#starid-form button[type=submit]")
        page.wait_for_selector("#starid-result.refused")
        assert "not JSON" in page.inner_text("#starid-result")

        # A frame image: the service detects the stars, the chart shows the frame under them.
        rendered = render_frame(build_sky(), np.random.default_rng(21), snr_at_mag6=10.0)
        frame_path = tmp_path / "frame.png"
        frame_path.write_bytes(cv2.imencode(".png", rendered.image)[1].tobytes())
        page.set_input_files("#starid-image", str(frame_path))
        page.click("#starid-form button[type=submit]")
        page.wait_for_selector("#starid-result.refused")
        assert "field of view" in page.inner_text("#starid-result")
        page.fill("#starid-fov", "14")
        page.click("#starid-form button[type=submit]")
        page.wait_for_selector("#starid-result.localized, #starid-result.not-localized, #starid-result.refused", timeout=180_000)
        text = page.inner_text("#starid-result")
        assert "status: identified" in text and "stars detected in the 1024 × 1024 frame" in text, text
        labels = page.eval_on_selector_all("#sky text.hip", "t => t.map(e => e.textContent)")
        truth = {f"HIP {int(h)}" for h in rendered.scene.hip if h > 0}
        assert len(labels) >= 3 and set(labels) <= truth
        assert page.query_selector("#sky image") is not None
