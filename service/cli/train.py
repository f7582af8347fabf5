"""`astroloc train --config FILE`: queue a training run (or run it here with --inline)."""

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
    if not inline:
        from service.db import upgrade_database
        from worker.queue import enqueue

        upgrade_database(settings.resolved_database_url)
        job_id = enqueue(settings, "train", params, queue="train")
        print_json({"job_id": job_id, "queue": "train", "follow": f"GET /jobs/{job_id}"})
        return
    from model.training import train as run_training
    from service import artifacts
    from service.db import upgrade_database

    work = out or settings.data_dir / "train" / checked.name
    metrics = run_training(checked, work, progress=lambda f, e: typer.echo(json.dumps({"progress": round(f, 3), **e})))
    upgrade_database(settings.resolved_database_url)
    version = artifacts.publish(settings, work / "model.pt", name=checked.name, kind="retrieval",
                                architecture=checked.arch, metrics=metrics, config={"training": params},
                                activate=checked.activate)
    print_json({"model_version": version.id, "model": str(work / "model.pt"), "metrics": metrics})
