from __future__ import annotations

from importlib.metadata import version

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.api.schemas import HealthOut
from service.health import database_health, model_store_health
from worker.queue import get_job_queue

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut)
def health(settings: SettingsDep) -> HealthOut:
    """Database, queue and model-store state; `degraded` when one of them is not usable."""
    database = database_health(settings)
    queue = get_job_queue(settings).describe()
    store = model_store_health(settings)
    ok = database["ok"] and queue["ok"] and store["ok"]
    return HealthOut(
        status="ok" if ok else "degraded",
        version=version("astroloc"),
        database=database,
        queue=queue,
        model_store=store,
    )
