"""Views on the ISS orbit: how the demo world's photos are drawn (time, place, lens, nuisances)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from typing import Literal

import numpy as np

from geo.prior import distance_for_tilt_km, load_prior, tilt_for_distance_deg
from geo.tle import TLE, as_tles, parse_tles
from world.photosim import draw_nuisances
from world.view import ViewSpec, land_fraction


@dataclass(frozen=True)
class QuerySampling:
    """How simulated photos are drawn (the defaults give the demo world's queries)."""

    width: int = 512
    height: int = 512
    # Log-uniform lens focal lengths on a full-frame body, 10-40 mm: from ~420 km, footprints
    # ~350-2,000 km across, as wide as the tiles of zooms 4-6 (zoom-3 tiles are wider than
    # any photo whose corners all stay on the Earth). See docs/world.md.
    focal_mm: tuple[float, float] = (10.0, 40.0)
    tilt_deg: tuple[float, float] = (0.0, 60.0)
    # How tilts are drawn within tilt_deg: "uniform" in angle, or "eol": the footprint-centre
    # distances of the real EOL catalogue (geo.prior's fitted law, truncated to tilt_deg), so
    # the world is as oblique as the catalogue. Both use one uniform draw: same seed, same world.
    tilt_law: Literal["uniform", "eol"] = "uniform"
    earth_limb_fraction: float = 0.1  # share of photos with a corner off the Earth
    min_land_fraction: float = 0.25  # views with less land are mostly redrawn ...
    open_ocean_keep: float = 0.1  # ... and kept with this probability (some real photos are sea)
    min_sun_elevation_deg: float = 10.0  # at the image centre: astronauts photograph daylit ground

    def __post_init__(self) -> None:
        low, high = self.focal_mm
        if not 0.0 < low <= high:
            raise ValueError(f"focal range must be positive and ordered, got {self.focal_mm}")
        if not 0.0 <= self.tilt_deg[0] <= self.tilt_deg[1] <= 70.0:
            raise ValueError(f"tilt range must lie within [0, 70] degrees, got {self.tilt_deg}")
        if self.tilt_law not in ("uniform", "eol"):
            raise ValueError(f"tilt law must be 'uniform' or 'eol', got {self.tilt_law!r}")
        for name in ("earth_limb_fraction", "min_land_fraction", "open_ocean_keep"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


# The demo world as oblique as the real catalogue (`astroloc world build --tilt-law eol`): up to
# 70 deg, where the fitted law leaves 0.05% of the real photos out.
EOL_TILT_SAMPLING = QuerySampling(tilt_deg=(0.0, 70.0), tilt_law="eol")

_MAX_ATTEMPTS_PER_VIEW = 2000


def sample_view(
    rng: np.random.Generator, tles: Sequence[TLE | tuple[str, str]], sampling: QuerySampling = QuerySampling()
) -> ViewSpec:
    """Draw one photo: a time on a TLE epoch's day, the ISS there, a daylit target, a lens, nuisances.

    The camera leans ``tilt`` off nadir towards a random azimuth (so the target is inside the
    ISS visibility region by construction) and is rolled at random. Views are redrawn until the
    Earth-limb status wanted for this photo, daylight and (mostly) some land are obtained.
    """
    from geo import iss_position, sun_elevation  # geo/orbit.py and geo/visibility.py (issue 3)

    if not tles:
        raise ValueError("no TLEs to place the ISS with")
    tles = as_tles(tles)
    epochs = [tle.epoch for tle in tles]
    want_limb = bool(rng.random() < sampling.earth_limb_fraction)
    for _ in range(_MAX_ATTEMPTS_PER_VIEW):
        epoch = epochs[int(rng.integers(len(epochs)))]
        day_start = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        when = day_start + timedelta(seconds=round(float(rng.uniform(0.0, 86_400.0)), 3))
        sub = iss_position(when, tles)
        view = ViewSpec(
            capture_time=when,
            nadir_lon=float(sub.lon),
            nadir_lat=float(sub.lat),
            alt_km=float(sub.alt_km),
            tilt_deg=draw_tilt_deg(rng, sampling, float(sub.alt_km)),
            azimuth_deg=float(rng.uniform(0.0, 360.0)),
            roll_deg=float(rng.uniform(0.0, 360.0)),
            focal_mm=float(np.exp(rng.uniform(*np.log(sampling.focal_mm)))),
            width=sampling.width,
            height=sampling.height,
            nuisances=draw_nuisances(rng),
            seed=int(rng.integers(2**31)),
            tle_epoch=sub.tle_epoch,
        )
        camera = view.camera()
        if bool(np.isnan(camera.corner_lonlat()).any()) != want_limb:
            continue
        centre_lon, centre_lat = camera.centre_lonlat()
        if sun_elevation(centre_lat, centre_lon, when) < sampling.min_sun_elevation_deg:
            continue
        if land_fraction(camera) < sampling.min_land_fraction and rng.random() >= sampling.open_ocean_keep:
            continue
        return view
    raise RuntimeError(f"no acceptable view in {_MAX_ATTEMPTS_PER_VIEW} draws; loosen the sampling")


def draw_tilt_deg(rng: np.random.Generator, sampling: QuerySampling, alt_km: float) -> float:
    """One camera tilt (degrees off nadir) by the sampling's tilt law, from one uniform draw."""
    if sampling.tilt_law == "uniform":
        return float(rng.uniform(*sampling.tilt_deg))
    # Inverse-CDF draw of the centre distance, truncated to the distances of the tilt range.
    prior = load_prior()
    low, high = (distance_for_tilt_km(t, alt_km) for t in sampling.tilt_deg)
    probability = rng.uniform(float(prior.distance_cdf(low)), float(prior.distance_cdf(high)))
    return float(np.clip(tilt_for_distance_deg(prior.distance_quantile_km(probability), alt_km), *sampling.tilt_deg))


def sample_tles() -> list[TLE]:
    """The real ISS element sets shipped with the package (geo/data/iss_sample.tle), validated."""
    parsed = parse_tles(resources.files("geo.data").joinpath("iss_sample.tle").read_text())
    if parsed.errors or not parsed.tles:
        raise ValueError(f"geo/data/iss_sample.tle is damaged: {'; '.join(map(str, parsed.errors))}")
    return parsed.tles
