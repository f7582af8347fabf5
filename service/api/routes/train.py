"""POST /train: queue a training run on the `train` queue (the trainer worker runs it)."""

from __future__ import annotations

from fastapi import APIRouter, Body, Request

from service.api.deps import ApiKeyDep, SettingsDep
from service.api.schemas import JobCreated
from service.jobs import enqueue, require_room
from service.train_request import parse_train_request

router = APIRouter(tags=["training"])

TRAIN_BODY = {
    "type": "object",
    "description": "Training options: fields of model/training.TrainConfig (docs/training.md). Checked "
                   "before anything is queued: `arch` one of the registered architectures, `zooms` a list "
                   "of integers 0-22, `world_dir` / `init_weights` inside the data directory or the model "
                   "store, `iterations` <= ASTROLOC_TRAIN_MAX_ITERATIONS, batch sizes <= "
                   "ASTROLOC_TRAIN_MAX_BATCH, `threads` <= ASTROLOC_TRAIN_MAX_THREADS; unknown keys refused.",
    "example": {"iterations": 450, "arch": "earthloc-nano"},
}


@router.post("/train", status_code=202, response_model=JobCreated, dependencies=[ApiKeyDep],
             openapi_extra={"requestBody": {"required": False,
                                            "content": {"application/json": {"schema": TRAIN_BODY}}}})
def start_training(request: Request, settings: SettingsDep,
                   config: dict = Body(default_factory=dict, include_in_schema=False)) -> JobCreated:
    """Train a retrieval model (AstroLoc pair loss + MUM mining); body: training options
    (model/training.TrainConfig, e.g. {"iterations": 450}). Progress (iteration, losses,
    validation recall) shows in GET /jobs/{id}; the model is published to the store."""
    require_room(settings, "train")
    train_config = parse_train_request(settings, config)  # TrainRequestInvalid -> 422
    job_id = enqueue(settings, "train", train_config, queue="train")
    return JobCreated(job_id=job_id, status_url=str(request.url_for("get_job", job_id=job_id)))
