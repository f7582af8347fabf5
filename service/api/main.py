"""The FastAPI application: thin routes over plain functions (see service/api/routes)."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.api.routes import health, jobs, localize, maps, models, orbit, photos, starid, train, webapp
from service.jobs import recover_jobs
from service.config import Settings, get_settings
from service.db import upgrade_database

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if migrate:
            upgrade_database(settings.resolved_database_url)
        outcome = recover_jobs(settings)
        if any(outcome.values()):
            log.warning("recovered jobs at start-up: %s", outcome)
        yield

    app = FastAPI(
        title="astroloc",
        description="Geolocalization of astronaut photos and star-tracker frames.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.middleware("http")
    async def refuse_oversized_bodies(request: Request, call_next):  # noqa: ANN001, ANN202
        # Refuse before the body is read: a 5 GB upload never touches the disk.
        declared = request.headers.get("content-length")
        limit = settings.max_upload_bytes + 1024 * 1024  # room for the multipart envelope
        if declared is not None:
            if not declared.isdigit():
                return JSONResponse({"detail": "invalid Content-Length header"}, status_code=400)
            if int(declared) > limit:
                return JSONResponse(
                    {"detail": f"request body larger than {settings.max_upload_bytes} bytes"},
                    status_code=413,
                )
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Location and message only: echoing the input back can be huge, or not even JSON (NaN).
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(ValueError)
    async def value_error(_request: Request, exc: ValueError) -> JSONResponse:
        # Algorithms signal bad input with ValueError: the client's fault, with the reason.
        return JSONResponse({"detail": str(exc)}, status_code=422)

    for module in (health, jobs, localize, orbit, starid, photos, models, train, maps, webapp):
        app.include_router(module.router)
    webapp.mount_assets(app)  # the web app's bundled JS/CSS at /static
    return app
