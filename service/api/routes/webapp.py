"""The web app at ``/``: the map, the upload panel and the star-ID panel (sources in frontend/).

`npm ci && npm run build` in frontend/ (part of `make install`) writes frontend/dist/: index.html
and the bundled assets (Leaflet included) served under /static, so the page makes no request to
any other host. Without a build, ``/`` says how to make one.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from service.api.deps import ApiKeyDep, SettingsDep

WEB_DIST = Path(__file__).resolve().parents[3] / "frontend" / "dist"

router = APIRouter(tags=["web app"])

NOT_BUILT = """<!doctype html><meta charset="utf-8"><title>astroloc</title>
<h1>astroloc</h1><p>The web app is not built: run <code>make install</code>
(or <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>). The API answers meanwhile:
<a href="/docs">/docs</a>.</p>"""


@router.get("/", include_in_schema=False)
def index_page() -> Response:
    page = WEB_DIST / "index.html"
    if not page.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503)
    # Always revalidated: it names the current assets.
    return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/app/config.json")
def app_config(settings: SettingsDep) -> dict:
    """What the web app needs to know about this service before its first request."""
    return {
        "api_keys_required": bool(settings.api_keys),
        # Photos, footprints and jobs are read with the key too, unless reads are public.
        "read_keys_required": bool(settings.api_keys) and not settings.public_reads,
        "max_upload_bytes": settings.max_upload_bytes,
    }


@router.get("/app/key", status_code=204, dependencies=[ApiKeyDep], responses={401: {"description": "Wrong key."}})
def check_api_key() -> Response:
    """204 when the ``X-API-Key`` header is accepted (always, on a service without keys); 401
    otherwise. Lets the web app tell a wrong key when it is entered, not at the first upload."""
    return Response(status_code=204)


def mount_assets(app: FastAPI) -> None:
    """Serve the built assets at /static (a missing build gives 404s there, not a start-up error)."""
    app.mount("/static", StaticFiles(directory=WEB_DIST / "static", check_dir=False), name="static")
