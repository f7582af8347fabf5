"""`astroloc train --config FILE`: queue a training run, or train and publish here with --inline (service.training)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from service.cli.common import fail, print_json
from service.config import get_settings


def register(app: typer.Typer) -> None:
    app.command()(train)


def train(
    config: Path = typer.Option(..., exists=True, dir_okay=False, help="Training options (JSON, e.g. configs/train-demo.json)."),
    inline: bool = typer.Option(False, help="Run here and now, printing progress, instead of queueing."),
    out: Path = typer.Option(None, help="With --inline: work directory (default data_dir/train/<config name>)."),
) -> None:
    """Train the retrieval model the AstroLoc way (pair loss + MUM mining) and publish it."""
    from model.training import TrainConfig

    settings = get_settings()
    try:
        params = json.loads(config.read_text())
        checked = TrainConfig.from_dict(params)
    except (json.JSONDecodeError, ValueError, TypeError) as exc:
        fail(f"{config}: {exc}")
    from service.db import upgrade_database

    upgrade_database(settings.resolved_database_url)
    if not inline:
        from service.jobs import enqueue

        job_id = enqueue(settings, "train", checked, queue="train")
        print_json({"job_id": job_id, "queue": "train", "follow": f"GET /jobs/{job_id}"})
        return
    from service.training import train_and_publish

    work = out or settings.data_dir / "train" / checked.name
    published = train_and_publish(settings, checked, work,
                                  progress=lambda f, e: typer.echo(json.dumps({"progress": round(f, 3), **e})))
    print_json({"model_version": published.model_version, "model": str(published.model_path),
                "metrics": published.metrics})
