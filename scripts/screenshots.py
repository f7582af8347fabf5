"""Screenshots of the web map for the README, taken with Debian's headless chromium.

    python scripts/screenshots.py http://127.0.0.1:8000 [--photo ID] [--upload PHOTO --time T] [--out DIR]

Against a running service with photos on it (`make demo` leaves one serving): `map.jpg`, the map
framed on every stored footprint, `photo.jpg`, one photo's page (by default the most confident
footprint), and with --upload, `upload.jpg`: a photo localized through the Localize panel. The browser is driven by playwright's Python client; nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
# Headless and quiet: no GPU, and none of the browser's own calls home (updates, sync, ...).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 860}
# True once the selected photo's overlay image is drawn on the map (for page.wait_for_function).
OVERLAY_LOADED_JS = ("(() => { const i = document.querySelector('img.photo-overlay');"
                     " return i && i.complete && i.naturalWidth > 0 })()")


def launch_chromium(playwright, executable: str = CHROMIUM):  # noqa: ANN001, ANN201
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)


def _footprints(base: str) -> list[dict]:
    with urllib.request.urlopen(f"{base}/photos?bbox=-180,-85,180,85&limit=10000", timeout=30) as answer:
        return json.load(answer)["features"]


def _bbox_of(features: list[dict]) -> str:
    lons, lats = [], []
    for feature in features:
        geometry = feature["geometry"]
        polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
        for polygon in polygons:
            for lon, lat in polygon[0]:
                lons.append(lon)
                lats.append(lat)
    pad = 3.0
    return ",".join(f"{v:.1f}" for v in (max(-180, min(lons) - pad), max(-85, min(lats) - pad),
                                         min(180, max(lons) + pad), min(85, max(lats) + pad)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="the service's base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--photo", help="photo id for photo.jpg (default: the most confident footprint)")
    parser.add_argument("--upload", type=Path, help="also upload.jpg: this photo sent through the Localize panel")
    parser.add_argument("--time", help="its capture time (ISO 8601 with zone), for --upload")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    base = args.base.rstrip("/")
    features = _footprints(base)
    if not features:
        raise SystemExit(f"no footprint stored at {base}: localize some photos first (make demo)")
    photo = args.photo or max(features, key=lambda f: f["properties"].get("confidence") or 0)["properties"]["photo_id"]
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{base}/#bbox={_bbox_of(features)}")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_selector("path.footprint")
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(args.out / "map.jpg"), quality=85)

        page.goto(f"{base}/#photo={photo}")
        page.reload()  # a new fragment alone does not restart the app
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_function(OVERLAY_LOADED_JS)
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(args.out / "photo.jpg"), quality=85)

        if args.upload:
            page.goto(f"{base}/#tab=upload")
            page.reload()
            page.wait_for_selector("body[data-ready=true]")
            page.set_input_files("#upload-file", str(args.upload))
            if args.time:
                page.fill("#upload-time", args.time)
            page.click("#upload-submit")
            page.wait_for_selector("#upload-status[data-state=localized], #upload-status[data-state=not-localized],"
                                   " #upload-status[data-state=refused]", timeout=600_000)
            page.click("#tabs button[data-tab=upload]")  # the outcome, beside the photo drawn on the map
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(args.out / "upload.jpg"), quality=85)
        browser.close()
    print(f"wrote {args.out / 'map.jpg'} ({len(features)} footprints) and {args.out / 'photo.jpg'} ({photo})")


if __name__ == "__main__":
    main()
