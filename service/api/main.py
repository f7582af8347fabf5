"""The FastAPI application: thin routes over plain functions (see service/api/routes)."""

from __future__ import annotations

import logging
import re
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.api.bounds import RequestBounds
from service.api.openapi import build_openapi
from service.api.routes import health, jobs, localize, maps, models, orbit, photos, starid, train, webapp
from service.jobs import recover_jobs
from service.config import Settings, get_settings
from service.db import upgrade_database
from service.errors import InvalidInput
from service.limits import ServiceBusy
from service.train_request import TrainRequestInvalid

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        if migrate:
            upgrade_database(settings.resolved_database_url)
        try:
            outcome = recover_jobs(settings)
        except OperationalError as exc:  # the database is down: serve (503s, /health degraded) meanwhile
            log.error("job recovery at start-up skipped, database unavailable: %s", str(exc).splitlines()[0])
        else:
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
    # Refused before the body is read (a 5 GB upload never touches the disk), a chunked one as soon
    # as it passes the cap; a body that stalls is answered 408.
    app.add_middleware(
        RequestBounds,
        max_body_bytes=settings.max_upload_bytes + 1024 * 1024,  # room for the multipart envelope
        idle_timeout_s=settings.request_body_idle_timeout_s,
        total_timeout_s=settings.request_body_timeout_s,
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # Location and message only: echoing the input back can be huge, or not even JSON (NaN).
        errors = [
            {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
            for error in exc.errors()
        ]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.exception_handler(TrainRequestInvalid)
    async def invalid_training(_request: Request, exc: TrainRequestInvalid) -> JSONResponse:
        return JSONResponse({"detail": exc.problems}, status_code=422)

    @app.exception_handler(InvalidInput)
    async def invalid_input(_request: Request, exc: InvalidInput) -> JSONResponse:
        # Only our own typed refusal is the client's fault; any other exception is a 500 (logged).
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours (a bare ValueError from an algorithm included): logged with its traceback.
        log.error("internal error answering %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal server error; the service's log has the details"}, status_code=500)

    @app.exception_handler(ServiceBusy)
    async def busy(_request: Request, exc: ServiceBusy) -> JSONResponse:
        # A full queue (429) or no free decode slot (503): not stored, retry later.
        return JSONResponse({"detail": str(exc)}, status_code=exc.status,
                            headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(OperationalError)
    async def database_down(_request: Request, exc: OperationalError) -> JSONResponse:
        # The database is unreachable (restarting, network): the service, not the request, failed.
        log.error("database unavailable: %s", str(exc).splitlines()[0])
        return JSONResponse({"detail": "the database is unavailable; retry shortly"}, status_code=503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code != 405:
            return await http_exception_handler(request, exc)
        # The router names the methods of the first route whose path matched (GET /jobs/{id} for
        # /jobs/selftest): answer with those of every route of this path instead.
        allowed = allowed_methods(app, request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={"Allow": allowed})
        return JSONResponse({"detail": f"method {request.method} not allowed; allowed: {allowed}"},
                            status_code=405, headers={"Allow": allowed})

    for module in (health, jobs, localize, orbit, starid, photos, models, train, maps, webapp):
        app.include_router(module.router)
    webapp.mount_assets(app)  # the web app's bundled JS/CSS at /static

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def allowed_methods(app: FastAPI, request: Request) -> str:
    """The methods the OpenAPI document gives this request's path, as an ``Allow`` header value: a
    literal path (/jobs/selftest) is its own resource, before any template (/jobs/{job_id})."""
    paths = app.openapi().get("paths", {})
    path = request.url.path
    matching = [template for template in paths if template == path] or [
        template for template in paths
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path)]
    methods = {"OPTIONS"} | {method.upper() for template in matching for method in paths[template]}
    if "GET" in methods:
        methods.add("HEAD")
    return ", ".join(sorted(methods))
