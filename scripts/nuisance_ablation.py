"""What limits retrieval on the demo world: the photos' nuisances or the ground itself? Each
held-out photo is rendered again from its own view (the same ISS position, pointing, lens and
roll: `world render --seed S --index I`), with some or all of its nuisances taken away, and
searched in its visibility region as POST /localize searches it (similarity only, the active
model and index). If the photos without any nuisance are found no better than as delivered, what
the tiles show (look-alike ocean, ice, desert at ~7 km/px) is the limit, not robustness.

    .venv/bin/python scripts/nuisance_ablation.py --split val
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
from PIL import Image
from tqdm import tqdm

from service.bench.prior import describe_photos
from turned_index_by_residual import describe_images, held_out, in_region_hits
from world.photosim import NO_NUISANCES
from world.sampling import QuerySampling, sample_tles, sample_view
from world.view import render_view

VARIANTS = {  # name -> the nuisances kept, from the photo's own draw
    "rendered again, all nuisances (must equal the photo as delivered)": lambda n: n,
    "no clouds": lambda n: dataclasses.replace(n, cloud_cover=0.0),
    "no haze, colour cast, contrast, film or vignetting": lambda n: dataclasses.replace(
        n, haze_optical_depth=0.0, white_balance=(1.0, 1.0, 1.0), contrast=1.0, shuttle_film=False, vignetting=0.0),
    "no nuisance at all": lambda n: NO_NUISANCES,
}


def main() -> None:
    split, settings, engine, photos, regions = held_out(__doc__.splitlines()[0])
    tles, sampling = sample_tles(), QuerySampling(width=settings.world_image_size, height=settings.world_image_size)
    seed = settings.world_seed
    views = [sample_view(np.random.default_rng([seed, int(p.columns["FRAME"])]), tles, sampling) for p in photos]
    rows = [("as delivered (the world's JPEGs)", describe_photos(settings, photos))]
    for name, keep in VARIANTS.items():
        images = []
        for view in tqdm(views, desc=name[:30]):
            jpeg = render_view(dataclasses.replace(view, nuisances=keep(view.nuisances))).jpeg
            images.append(np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB")))
        rows.append((name, describe_images(engine, images)))
    print(f"{split}: {len(photos)} photos, model {engine.model_ref.label()}; in-region, similarity only")
    print("| photos | R@1 | R@10 |\n|---|---|---|")
    for name, descriptors in rows:
        hits = in_region_hits(engine.index, descriptors, photos, regions, settings.index_nprobe)
        print(f"| {name} | {100 * hits[:, 0].mean():.1f}% | {100 * hits[:, 1].mean():.1f}% |", flush=True)


if __name__ == "__main__":
    main()
