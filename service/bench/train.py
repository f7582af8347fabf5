"""`astroloc bench train`: AstroLoc's ablation (Tab. 6) in miniature, one row per loss / mining choice."""

from __future__ import annotations


def run(world_dir: str = "var/world", zooms: str = "4,5", iterations: int = 200, lr: float = 5e-4,
        validation_queries: int = 0) -> str:
    """Every row trained with the same budget; recall@1/5/10/100 on the validation split."""
    import platform
    import tempfile
    import time

    from model.training import TrainConfig, ablation

    started = time.monotonic()
    base = TrainConfig.from_dict({
        "world_dir": world_dir, "zooms": [int(z) for z in zooms.split(",")], "iterations": iterations,
        "mining_every": max(1, iterations // 2), "checkpoint_every": iterations, "lr": lr,
        "validation_queries": validation_queries, "name": "ablation",
    })
    with tempfile.TemporaryDirectory(prefix="ablation-") as work:
        rows = ablation(base, work)
    queries = rows[0][1].get("queries", 0)
    lines = [
        f"`{base.arch}` trained from scratch for {iterations} iterations per row (batch {base.batch_pairs} pairs "
        f"+ {base.batch_quads} quadruplets, Adam lr {base.lr}, K = {base.clusters}, mining every "
        f"{base.mining_every}) on the demo world's training photos; validated on {queries} validation photos "
        f"against every tile of zooms {zooms} at 4 rotations, world-wide (a tile is correct when it contains "
        f"the photo footprint's centre). {platform.machine()}, CPU.",
        "",
        "| row | R@1 | R@5 | R@10 | R@100 |",
        "|---|---|---|---|---|",
    ]
    for label, metrics in rows:
        lines.append(f"| {label} | " + " | ".join(f"{metrics.get(f'recall@{k}', 0):.1%}" for k in (1, 5, 10, 100)) + " |")
    lines += ["", f"Total time {(time.monotonic() - started) / 60:.0f} min ({len(rows) - 1} trained rows + the untrained network)."]
    return "\n".join(lines)
