"""The training job: model/training.train in the job's work directory, then published.

Params: a training config (model/training.TrainConfig fields). The work directory is
``data_dir/train/<job id>``, so a retried job (its worker was killed) resumes from the last
checkpoint there. The result is published to the model store as a 'retrieval' version with its
config, training log and validation metrics; activated only when the config says ``activate``.
"""

from __future__ import annotations

from model.training import TrainConfig, train
from service import artifacts
from worker.tasks import JobContext, job_handler


@job_handler("train")
def train_job(context: JobContext, params: dict) -> dict:
    config = TrainConfig.from_dict(params)
    out_dir = context.settings.data_dir / "train" / context.job_id

    def progress(fraction: float, entry: dict) -> None:
        detail = {k: v for k, v in entry.items() if v is not None}
        context.progress(min(fraction, 0.99), **detail)

    metrics = train(config, out_dir, progress=progress)
    log_text = (out_dir / "log.jsonl").read_text() if (out_dir / "log.jsonl").is_file() else ""
    version = artifacts.publish(
        context.settings, out_dir / "model.pt", name=config.name, kind="retrieval", architecture=config.arch,
        metrics=metrics, config={"training": params, "log_tail": log_text.splitlines()[-20:], "job_id": context.job_id},
        activate=config.activate,
    )
    return {"model_version": version.id, "name": config.name, "architecture": config.arch,
            "activated": config.activate, "metrics": metrics, "work_dir": str(out_dir)}
