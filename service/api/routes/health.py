"""GET /health: the state of the service's dependencies (service.health)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SettingsDep
from service.api.schemas import HealthOut
from service.health import service_health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=HealthOut)
def health(settings: SettingsDep) -> HealthOut:
    """Database, queue and model-store state; `degraded` when one of them is not usable."""
    return HealthOut(**service_health(settings))
