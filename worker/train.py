"""The ``train`` job: params are a model.training.TrainConfig; service.training trains and publishes.

The work directory is ``data_dir/train/<job id>``, so a retried job (its worker was killed)
resumes from the last checkpoint there.
"""

from __future__ import annotations

from service.jobs import JobContext
from service.training import train_and_publish


def run(context: JobContext, raw: dict) -> dict:
    from model.training import TrainConfig  # torch loads with the first training job

    config = TrainConfig.from_dict(raw)

    def progress(fraction: float, entry: dict) -> None:
        detail = {k: v for k, v in entry.items() if v is not None}
        context.progress(min(fraction, 0.99), **detail)

    out_dir = context.settings.data_dir / "train" / context.job_id
    return train_and_publish(context.settings, config, out_dir, progress=progress, job_id=context.job_id).to_json()
