"""The night set of the demo world (issue 20): built next to the daytime world, read by the bench.

The world package renders the stars it is given (it does not read star catalogues); the sky
comes from here: every Hipparcos star to magnitude 7, close pairs kept apart (the sensor, not the
catalogue, merges them), positions propagated to the epoch of the world's TLEs.
"""

from __future__ import annotations

from pathlib import Path

from service.config import Settings

NIGHT_SKY_MAG_LIMIT = 7.0
NIGHT_SKY_EPOCH_YEAR = 2025.0  # the sample TLEs' years (2020s): proper motion to within ~5 years


def night_world_dir(settings: Settings) -> Path:
    """The night set's directory: beside the world's, with "-night" (var/world-night by default)."""
    world = settings.resolved_world_dir
    return world.with_name(world.name + "-night")


def night_sky():  # noqa: ANN201 (world.night.Sky)
    """The stars to render (see the module docstring)."""
    from starid.catalog import build_catalog
    from world.night import Sky

    catalog = build_catalog(mag_limit=NIGHT_SKY_MAG_LIMIT, min_separation_deg=0.0, epoch_year=NIGHT_SKY_EPOCH_YEAR)
    return Sky(vectors=catalog.vectors, magnitudes=catalog.magnitudes)


def build_night(settings: Settings, n_photos: int, seed: int = 0, out: Path | None = None,
                progress: bool = False) -> dict:
    """Build (or reuse) the night set; returns its manifest."""
    from world.night import build_night_world

    return build_night_world(out or night_world_dir(settings), n_photos, night_sky(), seed=seed, progress=progress)


DEMO_NIGHT_PHOTOS = 6  # rendered for `astroloc demo` (~1 s each); 4 of the first 6 show >= 6 stars


def demo_night_photo(settings: Settings):  # noqa: ANN201 (world.catalogue.WorldPhoto, world.night.NightTruth)
    """The night photo `astroloc demo` localizes by its stars: the first of a small night set of
    its own (data_dir/demo-night, so a benchmark's night set is left as it is) that shows enough
    stars above the limb; None when none does."""
    from service.localize.stars import DEFAULT_MIN_STARS
    from world.night import read_night_photos

    folder = settings.data_dir / "demo-night"
    build_night(settings, DEMO_NIGHT_PHOTOS, out=folder)
    chosen = read_night_photos(folder, min_stars=DEFAULT_MIN_STARS, limit=1)
    return chosen[0] if chosen else None
