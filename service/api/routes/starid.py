"""POST /star-id: lost-in-space star identification (service.star_catalog)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import ApiKeyDep, SettingsDep
from service.api.schemas import Message, StarIdIn
from service.star_catalog import identify_stars

router = APIRouter(tags=["star identification"])


@router.post("/star-id", dependencies=[ApiKeyDep], responses={422: {"model": Message}})
def star_id(body: StarIdIn, settings: SettingsDep) -> dict:
    """Lost-in-space star identification (ROSIA) from star centroids (pixels) or unit vectors.

    Returns `status` identified | no_result (with `reason`), the HIP number of each star (or
    null), the attitude (quaternion camera -> ICRS, boresight RA/Dec, roll) and the runtime.
    """
    return identify_stars(settings, body.model_dump(exclude_none=True))
