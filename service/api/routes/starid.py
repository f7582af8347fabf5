from __future__ import annotations

from fastapi import APIRouter, HTTPException

from service.api.deps import ApiKeyDep
from service.api.schemas import Message, StarIdIn

router = APIRouter(tags=["star identification"])


@router.post("/star-id", dependencies=[ApiKeyDep], responses={501: {"model": Message}})
def star_id(body: StarIdIn) -> dict:
    """Lost-in-space star identification (ROSIA) from detected star centroids or vectors."""
    raise HTTPException(501, "star identification is not available yet in this version")
