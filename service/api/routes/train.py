"""POST /train: queue a training run on the `train` queue (the trainer worker runs it)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.api.deps import ApiKeyDep, SettingsDep
from service.api.schemas import JobCreated, Message
from service.jobs import enqueue

router = APIRouter(tags=["training"])


@router.post("/train", status_code=202, response_model=JobCreated, dependencies=[ApiKeyDep],
             responses={422: {"model": Message}})
def start_training(config: dict, request: Request, settings: SettingsDep) -> JobCreated:
    """Train a retrieval model (AstroLoc pair loss + MUM mining); body: training options
    (model/training.TrainConfig, e.g. {"world_dir": ..., "iterations": 450}). Progress (iteration,
    losses, validation recall) shows in GET /jobs/{id}; the model is published to the store."""
    from model.training import TrainConfig  # torch loads on first use, not at API start

    job_id = enqueue(settings, "train", TrainConfig.from_dict(config), queue="train")  # ValueError -> 422
    return JobCreated(job_id=job_id, status_url=str(request.url_for("get_job", job_id=job_id)))
