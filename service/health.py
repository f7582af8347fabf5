"""State of the service's dependencies, for GET /health and `astroloc status`."""

from __future__ import annotations

from importlib.metadata import version

from sqlalchemy import text

from model.store import CorruptArtifactError
from service import artifacts, crud, jobs
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
    """The active artifact of each kind, each found in the configured store and verified (sha256);
    ``ok`` is False, with the reason, when one is missing or its bytes changed. No server path is
    shown: artifacts are named by their key in the store."""
    try:
        with session_scope(settings.resolved_database_url) as session:
            active = [v for v in crud.list_model_versions(session) if v.active]
    except Exception as exc:
        return {"ok": False, "error": str(exc).splitlines()[0]}
    store = artifacts.model_store(settings)
    found, problems = {}, []
    for model_version in active:
        try:
            store.verify(model_version.path, model_version.sha256)
        except (OSError, CorruptArtifactError) as exc:
            problems.append(f"active {model_version.kind} model {model_version.name!r}: {exc}")
            continue
        found[model_version.kind] = f"{model_version.name} ({model_version.sha256[:12]})"
    report: dict = {"ok": not problems, "active": found}
    if problems:
        report["error"] = "; ".join(problems)
    return report


def service_health(settings: Settings) -> dict:
    """Database, queue and model store; ``status`` is ``degraded`` when one of them is not usable,
    and ``reasons`` says why."""
    database = database_health(settings)
    queue = jobs.get_job_queue(settings).describe()
    store = model_store_health(settings)
    parts = {"database": database, "queue": queue, "model_store": store}
    reasons = [f"{name}: {part.get('error', 'not usable')}" for name, part in parts.items() if not part["ok"]]
    return {"status": "degraded" if reasons else "ok", "reasons": reasons, "version": version("astroloc"),
            **parts}
