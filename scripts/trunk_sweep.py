"""Compare zero-shot ImageNet trunks (GeM, nothing trained) at several input sizes on a split.

Retrieval recall only (model.training.zero_shot_metrics: the photos turned 4 ways, in-region
and world-wide, as the training runs measure), so that a trunk and size cost about a minute.
Choose on the validation split; the test split is for reporting the one chosen.

    .venv/bin/python scripts/trunk_sweep.py --split val lite0-gem:128 lite1-gem:128 lite2-gem:160
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from model.training import TrainConfig, zero_shot_metrics

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "train-lite-large-whitening.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("val", "test"), default="val",
                        help="val to choose; test reports the validation split and the test split")
    parser.add_argument("--world", default="var/world", help="the world whose tiles and photos are searched")
    parser.add_argument("trunks", nargs="+", help="ARCH:PX, e.g. lite2-gem:160 (a registered zero-shot architecture)")
    args = parser.parse_args()

    # The training runs' evaluation settings (zooms, rotations, seed); no training photos needed.
    base = json.loads(CONFIG.read_text()) | {"world_dir": args.world, "train_world_dir": None,
                                              "test": args.split == "test"}
    print("| trunk | px | split | in-region R@1 | R@10 | world-wide R@1 | R@10 | R@100 | s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for spec in args.trunks:
        arch, _, size = spec.partition(":")
        started = time.perf_counter()
        metrics = zero_shot_metrics(TrainConfig.from_dict(base), arch, int(size) if size else None)
        seconds = time.perf_counter() - started
        for split in ("validation", "test"):
            if split in metrics:
                m = metrics[split]
                recalls = [m["region_recall@1"], m["region_recall@10"], m["recall@1"], m["recall@10"], m["recall@100"]]
                print(f"| {arch} | {size or '-'} | {split} | " + " | ".join(f"{100 * r:.1f}%" for r in recalls)
                      + f" | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
