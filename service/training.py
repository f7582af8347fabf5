"""Train-and-publish, in one place: model/training.train in a work directory, then the model store.

Used by the ``train`` job (worker/train.py, work directory ``data_dir/train/<job id>`` so that a
retried job resumes from its last checkpoint) and by `astroloc train --inline`. The result is
published as a 'retrieval' version with its config, training log tail and validation metrics;
activated only when the config says ``activate``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service import artifacts
from service.config import Settings


@dataclass
class PublishedTraining:
    model_version: int  # id of the published model-store version
    name: str
    architecture: str
    activated: bool
    metrics: dict
    work_dir: Path

    @property
    def model_path(self) -> Path:
        return self.work_dir / "model.pt"

    def to_json(self) -> dict:
        return {"model_version": self.model_version, "name": self.name, "architecture": self.architecture,
                "activated": self.activated, "metrics": self.metrics, "work_dir": str(self.work_dir)}


def train_and_publish(settings: Settings, config, work_dir: Path,  # noqa: ANN001 (model.training.TrainConfig)
                      progress: Callable[[float, dict], None] | None = None,
                      job_id: str | None = None) -> PublishedTraining:
    """Train ``config`` in ``work_dir`` (resuming from its checkpoint) and publish the model."""
    from model.training import train  # torch loads when training, not when the service starts

    metrics = train(config, work_dir, progress=progress)
    log_path = work_dir / "log.jsonl"
    log_tail = log_path.read_text().splitlines()[-20:] if log_path.is_file() else []
    version = artifacts.publish(
        settings, work_dir / "model.pt", name=config.name, kind="retrieval", architecture=config.arch,
        metrics=metrics, config={"training": dataclasses.asdict(config), "log_tail": log_tail, "job_id": job_id},
        activate=config.activate,
    )
    return PublishedTraining(version.id, config.name, config.arch, config.activate, metrics, Path(work_dir))
