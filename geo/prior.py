"""Where astronauts point the camera: the obliquity prior, fitted on the real EOL footprints.

The search region is the whole visibility disc (~2,250 km around the ISS sub-point), but real
photos are not spread evenly over it: over the 17,763 real EOL footprints
(../shared/data/eol_footprints.csv) the footprint centre lies a median 323 km from the nadir
(p90 681 km, p99 941 km), and the footprint hardly grows with that distance (astronauts fit
longer lenses for oblique views). Two fitted laws describe it:

- **distance** of the footprint centre from the nadir: a Weibull law (shape ``k``, scale ``s``;
  it beats gamma, log-normal and Rice by log-likelihood on the catalogue). As a density over the
  ground (per km²) it is ``f(d) / (2 pi R sin(d / R))``: what a candidate tile is weighed by;
- **size** (sqrt of the footprint area) vs the slant range ``r(d)`` from the ISS:
  ``log size = a + b log r + N(0, sigma)``.

The fit is stored in ``geo/data/obliquity_prior.json`` (small, committed) and refitted from the
catalogue in place by ``astroloc bench prior --refit`` (:func:`fit_prior`); nothing of the
catalogue is copied. Rows whose corners lie far beyond the horizon (the catalogue's 10 metadata
errors, see :data:`HORIZON_MARGIN`) are left out of the fit. The same distance law draws the
demo world's camera tilts (:func:`tilt_for_distance_deg`), so the world is as oblique as the
catalogue.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from geo.eol import row_corners
from geo.lonlat import geodesic_distance_km, unit_vectors
from geo.orbit import ISS_ALTITUDE_KM, MEAN_EARTH_RADIUS_KM
from geo.visibility import visibility_radius_km

FIT_RESOURCE = "obliquity_prior.json"
# A catalogue corner beyond the horizon cannot be (the ISS does not see it); 10% past it is a
# metadata error, not rounding: on the catalogue the farthest plausible corner is at 1,731 km
# and the next at 2,544 km, against a horizon of ~2,250 km at 420 km altitude.
HORIZON_MARGIN = 1.10
# Ground points per tile side at which the distance density is averaged (a zoom-3 tile spans
# ~5,000 km, far more than the density's scale, so one point at its centre would not do).
TILE_SAMPLES_PER_SIDE = 5
# Below this distance the per-km² density (which diverges like d^(k-2) at the nadir) is held flat.
MIN_DISTANCE_KM = 5.0


@dataclass(frozen=True)
class FootprintOffsets:
    """Per catalogue row: where its footprint lies relative to the ISS nadir."""

    distance_km: np.ndarray  # geodesic distance from the nadir to the footprint centre
    size_km: np.ndarray  # sqrt of the footprint area (SQ_KM_AREA)
    max_corner_km: np.ndarray  # distance from the nadir to the farthest corner

    def __len__(self) -> int:
        return len(self.distance_km)


def footprint_centre(corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centre (lat, lon) of footprints given as ``(N, 4, 2)`` ``(lat, lon)`` corners: the
    normalised mean of the corners' unit vectors (right across the antimeridian)."""
    vectors = unit_vectors(corners[..., 0], corners[..., 1]).mean(axis=-2)
    lat = np.degrees(np.arctan2(vectors[..., 2], np.hypot(vectors[..., 0], vectors[..., 1])))
    return lat, np.degrees(np.arctan2(vectors[..., 1], vectors[..., 0]))


def footprint_offsets(rows: Iterable[Mapping[str, str]]) -> FootprintOffsets:
    """Centre distance, size and farthest corner of EOL catalogue rows (their 4 corners, NADIR_LAT,
    NADIR_LON and SQ_KM_AREA; ValueError on a row missing one)."""
    corners, nadirs, areas = [], [], []
    for row in rows:
        corners.append(row_corners(row))
        nadirs.append((float(row["NADIR_LAT"]), float(row["NADIR_LON"])))
        areas.append(float(row["SQ_KM_AREA"]))
    if not corners:
        raise ValueError("no catalogue rows to measure")
    corners_array, nadir = np.asarray(corners, float), np.asarray(nadirs, float)
    centre_lat, centre_lon = footprint_centre(corners_array)
    distance = geodesic_distance_km(nadir[:, 0], nadir[:, 1], centre_lat, centre_lon)
    corner_distance = geodesic_distance_km(
        np.repeat(nadir[:, 0], 4), np.repeat(nadir[:, 1], 4), corners_array[..., 0].ravel(), corners_array[..., 1].ravel()
    ).reshape(-1, 4)
    return FootprintOffsets(distance, np.sqrt(np.asarray(areas, float)), corner_distance.max(axis=1))


def far_beyond_horizon_km(alt_km: float = ISS_ALTITUDE_KM, lat: float = 0.0) -> float:
    """Ground distance from the sub-point beyond which a footprint corner is a metadata error."""
    return HORIZON_MARGIN * visibility_radius_km(lat, alt_km)


def slant_range_km(distance_km, alt_km: float = ISS_ALTITUDE_KM):
    """Straight-line range (km) from a satellite at ``alt_km`` to a ground point ``distance_km``
    from its sub-point (spherical Earth)."""
    radius = MEAN_EARTH_RADIUS_KM
    angle = np.asarray(distance_km, float) / radius
    return np.sqrt(radius**2 + (radius + alt_km) ** 2 - 2.0 * radius * (radius + alt_km) * np.cos(angle))


def tilt_for_distance_deg(distance_km, alt_km: float = ISS_ALTITUDE_KM):
    """Off-nadir angle (degrees) of the line of sight from ``alt_km`` to a ground point
    ``distance_km`` from the sub-point (spherical Earth)."""
    radius = MEAN_EARTH_RADIUS_KM
    angle = np.asarray(distance_km, float) / radius
    return np.degrees(np.arctan2(radius * np.sin(angle), radius + alt_km - radius * np.cos(angle)))


def distance_for_tilt_km(tilt_deg: float, alt_km: float = ISS_ALTITUDE_KM) -> float:
    """Ground distance (km) from the sub-point to where a line of sight ``tilt_deg`` off nadir
    meets a spherical Earth (the inverse of :func:`tilt_for_distance_deg`; the horizon beyond
    the grazing tilt)."""
    radius = MEAN_EARTH_RADIUS_KM
    tilt = math.radians(tilt_deg)
    return radius * (math.asin(min((radius + alt_km) / radius * math.sin(tilt), 1.0)) - tilt)


@dataclass(frozen=True)
class ObliquityPrior:
    """The fitted laws (see the module docstring); load the committed fit with :func:`load_prior`."""

    distance_shape: float  # Weibull k of the centre's distance from the nadir
    distance_scale_km: float  # Weibull scale
    size_log_intercept: float  # a in log(size_km) = a + b log(slant_km)
    size_log_slope: float  # b
    size_log_sigma: float  # residual standard deviation of log(size_km)
    fitted_rows: int
    rejected_rows: int  # rows with a corner far beyond the horizon (metadata errors)
    distance_quantiles_km: dict[str, float]  # measured p50/p90/p99 of the centre distance
    source: str  # what the fit was made from

    # --- the distance law ----------------------------------------------------------------------

    def distance_cdf(self, distance_km):
        d = np.maximum(np.asarray(distance_km, float), 0.0)
        return 1.0 - np.exp(-((d / self.distance_scale_km) ** self.distance_shape))

    def distance_quantile_km(self, probability):
        """Inverse of :meth:`distance_cdf` (probability in [0, 1))."""
        p = np.asarray(probability, float)
        if np.any((p < 0.0) | (p >= 1.0)):
            raise ValueError("probabilities must lie in [0, 1)")
        return self.distance_scale_km * (-np.log1p(-p)) ** (1.0 / self.distance_shape)

    def log_distance_pdf(self, distance_km):
        """Log density (per km) of the centre's distance from the nadir."""
        k, s = self.distance_shape, self.distance_scale_km
        d = np.maximum(np.asarray(distance_km, float), MIN_DISTANCE_KM)
        return math.log(k / s) + (k - 1.0) * np.log(d / s) - (d / s) ** k

    def log_density_per_km2(self, distance_km):
        """Log density (per km² of ground) of the footprint centre at ``distance_km`` from the nadir."""
        d = np.maximum(np.asarray(distance_km, float), MIN_DISTANCE_KM)
        ring_km = 2.0 * math.pi * MEAN_EARTH_RADIUS_KM * np.sin(np.minimum(d / MEAN_EARTH_RADIUS_KM, math.pi / 2))
        return self.log_distance_pdf(d) - np.log(ring_km)

    # --- the size law --------------------------------------------------------------------------

    def expected_log_size(self, distance_km, alt_km: float = ISS_ALTITUDE_KM):
        return self.size_log_intercept + self.size_log_slope * np.log(slant_range_km(distance_km, alt_km))

    def log_size_likelihood(self, size_km, distance_km, alt_km: float = ISS_ALTITUDE_KM):
        """Log density of ``log(size_km)`` for a footprint centred ``distance_km`` from the nadir."""
        z = (np.log(np.asarray(size_km, float)) - self.expected_log_size(distance_km, alt_km)) / self.size_log_sigma
        return -0.5 * z**2 - math.log(self.size_log_sigma * math.sqrt(2.0 * math.pi))

    # --- candidate tiles -------------------------------------------------------------------------

    def tile_terms(
        self, bounds: np.ndarray, sub_points: Sequence[tuple[float, float]], alt_km: float = ISS_ALTITUDE_KM
    ) -> tuple[np.ndarray, np.ndarray]:
        """The two log-prior terms of candidate tiles: ``(location, size)``, arrays ``(N,)``.

        ``bounds``: ``(N, 4)`` lon/lat boxes ``(west, south, east, north)`` (east may pass 180);
        ``sub_points``: one or more ``(lat, lon)`` ISS positions, taken as equally likely (a
        photo whose nadir disagrees with its orbit). ``location`` is the log of the per-km²
        density averaged over the tile (scale-free: a big tile is not favoured for holding more
        ground); ``size`` is the log-likelihood of the tile's width as the footprint size.
        """
        bounds = np.asarray(bounds, float).reshape(-1, 4)
        if not len(sub_points):
            raise ValueError("at least one sub-point is needed")
        steps = (np.arange(TILE_SAMPLES_PER_SIDE) + 0.5) / TILE_SAMPLES_PER_SIDE
        west, south, east, north = bounds.T
        lon = west[:, None, None] + (east - west)[:, None, None] * steps[None, None, :]
        lat = south[:, None, None] + (north - south)[:, None, None] * steps[None, :, None]
        lon, lat = np.broadcast_arrays(((lon + 180.0) % 360.0) - 180.0, lat)
        centre_lat, centre_lon = (south + north) / 2.0, (((west + east) / 2.0 + 180.0) % 360.0) - 180.0
        width_km = _box_width_km(west, south, east, north)
        location, size = [], []
        for sub_lat, sub_lon in sub_points:
            density = self.log_density_per_km2(geodesic_distance_km(sub_lat, sub_lon, lat, lon))
            location.append(_log_mean_exp(density.reshape(len(bounds), -1), axis=1))
            size.append(self.log_size_likelihood(width_km, geodesic_distance_km(sub_lat, sub_lon, centre_lat, centre_lon), alt_km))
        return _log_mean_exp(np.stack(location), axis=0), np.max(np.stack(size), axis=0)

    # --- storage -------------------------------------------------------------------------------

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> ObliquityPrior:
        return cls(**data)


def _box_width_km(west, south, east, north) -> np.ndarray:
    """Square root of the area (km², spherical) of lon/lat boxes."""
    radius = MEAN_EARTH_RADIUS_KM
    area = radius**2 * np.radians(east - west) * np.abs(np.sin(np.radians(north)) - np.sin(np.radians(south)))
    return np.sqrt(area)


def _log_mean_exp(values: np.ndarray, axis: int) -> np.ndarray:
    top = values.max(axis=axis, keepdims=True)
    return np.squeeze(top, axis) + np.log(np.mean(np.exp(values - top), axis=axis))


def fit_prior(offsets: FootprintOffsets, source: str = "") -> ObliquityPrior:
    """Fit both laws on catalogue rows (maximum likelihood Weibull; least squares in log size),
    leaving out rows with a corner far beyond the horizon."""
    from scipy import stats  # only the refit needs scipy

    plausible = offsets.max_corner_km <= far_beyond_horizon_km()
    distance, size = offsets.distance_km[plausible], offsets.size_km[plausible]
    if len(distance) < 10:
        raise ValueError(f"only {len(distance)} plausible footprints: too few to fit a prior")
    shape, _, scale = stats.weibull_min.fit(distance, floc=0.0)
    design = np.column_stack([np.ones_like(distance), np.log(slant_range_km(distance))])
    (intercept, slope), *_ = np.linalg.lstsq(design, np.log(size), rcond=None)
    residual = np.log(size) - design @ np.array([intercept, slope])
    quantiles = np.percentile(distance, [50, 90, 99])
    return ObliquityPrior(
        distance_shape=round(float(shape), 5),
        distance_scale_km=round(float(scale), 3),
        size_log_intercept=round(float(intercept), 5),
        size_log_slope=round(float(slope), 5),
        size_log_sigma=round(float(residual.std(ddof=2)), 5),
        fitted_rows=int(plausible.sum()),
        rejected_rows=int((~plausible).sum()),
        distance_quantiles_km={k: round(float(v), 1) for k, v in zip(("p50", "p90", "p99"), quantiles)},
        source=source,
    )


def fit_catalogue(csv_path: Path | str) -> ObliquityPrior:
    """Fit the prior on an EOL catalogue CSV, read in place."""
    import csv

    path = Path(csv_path)
    with path.open(newline="") as handle:
        offsets = footprint_offsets(csv.DictReader(handle))
    return fit_prior(offsets, source=f"{path.name}: {len(offsets)} EOL rows")


def write_prior(prior: ObliquityPrior, path: Path | str) -> Path:
    path = Path(path)
    path.write_text(json.dumps(prior.to_json(), indent=2) + "\n")
    return path


def prior_path() -> Path:
    """Where the committed fit lives (geo/data/obliquity_prior.json)."""
    return Path(str(resources.files("geo.data").joinpath(FIT_RESOURCE)))


@lru_cache(maxsize=1)
def load_prior() -> ObliquityPrior:
    """The committed fit."""
    return ObliquityPrior.from_json(json.loads(prior_path().read_text()))
