"""State of the service's dependencies, for GET /health and `astroloc status`."""

from __future__ import annotations

from importlib.metadata import version

from sqlalchemy import text

from service import crud, jobs
from service.config import Settings
from service.db import current_revision, get_engine, session_scope


def database_health(settings: Settings) -> dict:
    url = settings.resolved_database_url
    backend = "postgis" if url.startswith("postgresql") else "sqlite"
    try:
        with get_engine(url).connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"ok": True, "backend": backend, "revision": current_revision(url)}
    except Exception as exc:
        return {"ok": False, "backend": backend, "error": str(exc).splitlines()[0]}


def model_store_health(settings: Settings) -> dict:
    root = settings.resolved_model_store_dir
    try:
        with session_scope(settings.resolved_database_url) as session:
            active = {v.kind: f"{v.name} ({v.sha256[:12]})" for v in crud.list_model_versions(session) if v.active}
    except Exception as exc:
        return {"ok": False, "path": str(root), "error": str(exc).splitlines()[0]}
    return {"ok": True, "path": str(root), "active": active}


def service_health(settings: Settings) -> dict:
    """Database, queue and model store; ``status`` is ``degraded`` when one of them is not usable."""
    database = database_health(settings)
    queue = jobs.get_job_queue(settings).describe()
    store = model_store_health(settings)
    ok = database["ok"] and queue["ok"] and store["ok"]
    return {"status": "ok" if ok else "degraded", "version": version("astroloc"), "database": database,
            "queue": queue, "model_store": store}
