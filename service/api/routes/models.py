"""GET /models: the versions in the model store."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from service import crud
from service.api.deps import SessionDep

router = APIRouter(tags=["models"])


class ModelVersionOut(BaseModel):
    id: int
    name: str
    kind: str
    architecture: str | None
    sha256: str
    size_bytes: int
    active: bool
    metrics: dict | None
    created_at: datetime


@router.get("/models", response_model=list[ModelVersionOut])
def list_models(session: SessionDep, kind: str | None = None) -> list[ModelVersionOut]:
    """Versions in the model store, newest first; one active version per kind."""
    return [ModelVersionOut.model_validate(v, from_attributes=True)
            for v in crud.list_model_versions(session, kind)]
