"""Night photos of the dark Earth with stars above the limb: the held-out set of the star path.

A night view is a daytime view's geometry (:class:`world.view.ViewSpec`: real ISS orbit, a camera
leaning towards the horizon) at a time when the sub-point is in darkness, aimed so that the limb
crosses the upper half of the frame. The rendering, in physical order:

1. the ground: Blue Marble darkened to moonlight and airglow, with city lights on land (random
   clusters of point sources, seeded);
2. the sky: the green airglow layer (~95 km) along the limb, and the stars: every catalogue star
   (Hipparcos, given by the caller as ICRS unit vectors and magnitudes) at its true place for the
   capture time and attitude, hidden behind the Earth and dimmed by the atmosphere near the limb;
3. the sensor: a Gaussian PSF smeared along a short line (the camera turning during the exposure),
   shot and read noise, hot pixels, and JPEG compression.

The ground truth is the catalogue layout of :mod:`world.catalogue` (queries.csv, via
:func:`world.catalogue.truth_row`) plus ``night.csv``: the true capture time (the catalogue's is
rounded to the second, as EXIF writes it), the attitude (camera -> ICRS quaternion, boresight
RA/Dec/roll), the stars in the frame and the footprint of the ground part as
:func:`geo.attitude_footprint.footprint_from_attitude` casts it from the true attitude.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from shapely import wkt

from geo.attitude_footprint import PinholeImage, footprint_from_attitude, icrs_to_itrs, tangent_altitude_km
from geo.ecef import intersect_ellipsoid
from geo.orbit import MEAN_EARTH_RADIUS_KM
from geo.sun import sun_elevation
from geo.tle import TLE, as_tles
from index.files import write_atomically, write_csv
from index.sources import encode_jpeg
from world.bluemarble import blue_marble, land_mask
from world.camera import FULL_FRAME_WIDTH_MM
from world.catalogue import WorldPaths, read_photos, simulated_photo_id, truth_row, write_queries_csv
from world.photosim import NO_NUISANCES, cast_view
from world.view import RenderedView, ViewSpec, footprint_of

log = logging.getLogger(__name__)

NIGHT_FORMAT_VERSION = 1
NIGHT_CSV = "night.csv"
NIGHT_COLUMNS = (
    "PHOTO_ID", "TRUE_CAPTURE_TIME", "ROTATION_ICRS", "STARS_IN_FRAME", "STARS_RENDERED", "SUB_POINT_SUN_ELEVATION_DEG",
    "GROUND_FRACTION", "GROUND_FOOTPRINT_WKT", "EXPOSURE_SMEAR_PX", "CITY_LIGHTS",
)  # fmt: skip
# "In the frame" for the benchmark: stars to this magnitude above the limb (>= 6 of them wanted).
IN_FRAME_MAG_LIMIT = 6.0
# Lenses astronauts use for night and star photos (full-frame Nikon bodies), mm.
NIGHT_LENSES_MM = (35.0, 50.0, 85.0)


@dataclass(frozen=True)
class Sky:
    """The stars to render: ICRS unit vectors (N, 3) at the world's epoch and their magnitudes."""

    vectors: np.ndarray
    magnitudes: np.ndarray

    def fingerprint(self) -> str:
        digest = hashlib.sha256(np.ascontiguousarray(self.vectors, np.float64).tobytes())
        digest.update(np.ascontiguousarray(self.magnitudes, np.float64).tobytes())
        return digest.hexdigest()[:16]


@dataclass(frozen=True)
class NightSampling:
    """How night photos are drawn (the defaults give the held-out night set)."""

    width: int = 1024
    height: int = 683
    lenses_mm: tuple[float, ...] = NIGHT_LENSES_MM
    max_sun_elevation_deg: float = -18.0  # at the sub-point: astronomical night below the ISS
    limb_row_fraction: tuple[float, float] = (0.12, 0.45)  # where the limb crosses the centre column
    roll_deg: float = 25.0  # the horizon tilted up to this either way
    city_lights: bool = True
    # The sensor: counts (DN) of a magnitude-0 star, sky and ground levels, noise, blemishes.
    zero_point_dn: float = 30_000.0
    sky_dn: float = 3.0
    ground_gain: float = 0.12  # Blue Marble's brightness under moonlight and airglow
    ground_floor_dn: float = 5.0  # dark ocean lit by airglow: still above the sky
    airglow_dn: float = 14.0
    read_noise_dn: float = 1.2
    psf_sigma_px: tuple[float, float] = (0.8, 1.3)
    smear_px: tuple[float, float] = (0.0, 2.0)
    hot_pixels: tuple[int, int] = (20, 80)
    jpeg_quality: int = 95


@dataclass(frozen=True)
class NightView:
    """Everything that determines one night photo."""

    view: ViewSpec  # geometry; view.capture_time is the true time
    reported_time: datetime  # what the photo's metadata says: the true time rounded to the second
    psf_sigma_px: float
    smear_px: float
    smear_angle_deg: float
    seed: int

    def image_geometry(self) -> PinholeImage:
        return PinholeImage(self.view.width, self.view.height, self.view.focal_px)

    def rotation_icrs(self) -> np.ndarray:
        """Camera -> ICRS at the true capture time (the attitude the stars reveal)."""
        return icrs_to_itrs(self.view.capture_time).T @ self.view.camera().rotation


@dataclass(frozen=True)
class NightTruth:
    """A night photo's extra ground truth (one row of night.csv)."""

    photo_id: str
    true_capture_time: datetime
    rotation_icrs: np.ndarray  # camera -> ICRS (3 x 3)
    stars_in_frame: int
    ground_footprint: object  # lon/lat shapely geometry of the ground part
    columns: dict


def sample_night_view(rng: np.random.Generator, tles: Sequence[TLE], sampling: NightSampling = NightSampling(),
                      max_attempts: int = 2000) -> NightView:
    """Draw one night view: a time on a TLE epoch's day with the sub-point in darkness, a lens, a
    camera aimed at the horizon (the limb in the upper part of the frame), a rolled horizon."""
    from geo import iss_position

    tles = as_tles(tles)
    for _ in range(max_attempts):
        epoch = tles[int(rng.integers(len(tles)))].epoch
        day_start = epoch.replace(hour=0, minute=0, second=0, microsecond=0)
        when = day_start + timedelta(seconds=round(float(rng.uniform(0.0, 86_400.0)), 3))
        sub = iss_position(when, tles)
        if sun_elevation(sub.lat, sub.lon, when) > sampling.max_sun_elevation_deg:
            continue
        focal_mm = float(rng.choice(sampling.lenses_mm))
        focal_px = focal_mm / FULL_FRAME_WIDTH_MM * sampling.width
        # The horizon's nadir angle (a sphere of the mean radius is close enough for aiming).
        limb_nadir_deg = math.degrees(math.asin(MEAN_EARTH_RADIUS_KM / (MEAN_EARTH_RADIUS_KM + sub.alt_km)))
        limb_row = float(rng.uniform(*sampling.limb_row_fraction)) * sampling.height
        tilt = limb_nadir_deg - math.degrees(math.atan((sampling.height / 2.0 - limb_row) / focal_px))
        view = ViewSpec(
            capture_time=when, nadir_lon=float(sub.lon), nadir_lat=float(sub.lat), alt_km=float(sub.alt_km),
            tilt_deg=float(tilt), azimuth_deg=float(rng.uniform(0.0, 360.0)),
            roll_deg=float(rng.uniform(-sampling.roll_deg, sampling.roll_deg)) % 360.0, focal_mm=focal_mm,
            width=sampling.width, height=sampling.height,
            nuisances=replace(NO_NUISANCES, jpeg_quality=sampling.jpeg_quality),
            seed=int(rng.integers(2**31)), tle_epoch=sub.tle_epoch,
        )  # fmt: skip
        reported = (when + timedelta(microseconds=500_000)).replace(microsecond=0)
        return NightView(
            view=view, reported_time=reported, psf_sigma_px=float(rng.uniform(*sampling.psf_sigma_px)),
            smear_px=float(rng.uniform(*sampling.smear_px)), smear_angle_deg=float(rng.uniform(0.0, 180.0)),
            seed=view.seed,
        )
    raise RuntimeError(f"no night view in {max_attempts} draws; check the TLEs")


@dataclass(frozen=True)
class RenderedNight:
    night: NightView
    image: np.ndarray  # RGB uint8
    jpeg: bytes
    stars_in_frame: int  # catalogue stars to IN_FRAME_MAG_LIMIT above the limb, inside the frame
    stars_rendered: int
    ground_fraction: float
    ground_footprint: object
    city_lights: bool


def render_night(night: NightView, sky: Sky, sampling: NightSampling = NightSampling()) -> RenderedNight:
    """Render one night photo (deterministic for a view, a sky and a sampling)."""
    view = night.view
    camera = view.camera()
    rng = np.random.default_rng(night.seed)
    lon, lat, geometry = cast_view(camera)
    hit = geometry.hit

    # 1. The ground: darkened Blue Marble over an airglow-lit floor, city lights on land.
    ground = blue_marble().sample(lon, lat) * sampling.ground_gain + sampling.ground_floor_dn
    light = np.zeros(hit.shape, np.float32)
    if sampling.city_lights and hit.any():
        light = _city_lights(camera, lon, lat, hit, rng)
    signal = np.where(hit[..., None], ground + light[..., None] * np.array([1.0, 0.85, 0.55], np.float32), 0.0)

    # 2. The sky: airglow along the limb, then the stars.
    altitude = np.where(hit, np.nan, geometry.tangent_altitude_km)
    glow = sampling.airglow_dn * np.exp(-(((altitude - 95.0) / 9.0) ** 2))
    below_glow = np.clip((95.0 - altitude) / 95.0, 0.0, 1.0) * sampling.airglow_dn * 0.6  # lower atmosphere
    sky_light = np.nan_to_num(glow + below_glow)
    signal = signal + sky_light[..., None] * np.array([0.55, 1.0, 0.6], np.float32) + sampling.sky_dn * ~hit[..., None]

    stars, in_frame = _star_pixels(night, sky, camera)
    star_layer = _render_stars(stars, night, sampling, hit.shape)
    signal = signal + star_layer[..., None]

    # 3. The sensor: shot noise (1 DN per electron-ish gain), read noise, hot pixels, JPEG.
    noisy = rng.poisson(np.clip(signal, 0.0, None)).astype(np.float32)
    noisy += rng.normal(0.0, sampling.read_noise_dn, noisy.shape).astype(np.float32)
    count = int(rng.integers(*sampling.hot_pixels))
    rows, cols = rng.integers(0, hit.shape[0], count), rng.integers(0, hit.shape[1], count)
    noisy[rows, cols, :] = rng.uniform(60.0, 255.0, count)[:, None]
    image = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    footprint = footprint_from_attitude(night.rotation_icrs(), camera.position, view.capture_time,
                                        night.image_geometry())
    return RenderedNight(night, image, encode_jpeg(image, sampling.jpeg_quality), in_frame, len(stars),
                         footprint.ground_fraction, footprint.polygon, sampling.city_lights)


def _star_pixels(night: NightView, sky: Sky, camera) -> tuple[np.ndarray, int]:  # noqa: ANN001
    """(x, y, magnitude after extinction) of the stars visible in the frame, and how many of them
    are brighter than IN_FRAME_MAG_LIMIT."""
    rotation_icrs = night.rotation_icrs()
    camera_vectors = sky.vectors @ rotation_icrs  # rows: R^T c
    pixels = night.image_geometry().project(camera_vectors)
    margin = 4.0
    inside = np.all(np.isfinite(pixels), axis=1)
    inside &= (pixels[:, 0] > -margin) & (pixels[:, 0] < camera.width + margin)
    inside &= (pixels[:, 1] > -margin) & (pixels[:, 1] < camera.height + margin)
    if not inside.any():
        return np.empty((0, 3)), 0
    directions = sky.vectors[inside] @ icrs_to_itrs(night.view.capture_time).T
    _, behind_earth = intersect_ellipsoid(camera.position, directions)
    tangent_km = tangent_altitude_km(camera.position, directions)
    # Extinction grazing the limb: nothing below ~20 km, a magnitude lost at 30 km, none above 60.
    extinction = np.where(tangent_km < 20.0, np.inf, 2.5 * np.exp(-(tangent_km - 20.0) / 10.0))
    magnitude = sky.magnitudes[inside] + extinction
    seen = ~behind_earth & np.isfinite(magnitude)
    xy = pixels[inside][seen]
    within = (xy[:, 0] >= 0) & (xy[:, 0] < camera.width) & (xy[:, 1] >= 0) & (xy[:, 1] < camera.height)
    in_frame = int(np.sum(within & (magnitude[seen] <= IN_FRAME_MAG_LIMIT)))
    return np.column_stack([xy, magnitude[seen]]), in_frame


def _render_stars(stars: np.ndarray, night: NightView, sampling: NightSampling, shape) -> np.ndarray:  # noqa: ANN001
    """Each star's flux in a Gaussian PSF smeared along a line of night.smear_px pixels."""
    layer = np.zeros(shape, np.float64)
    if len(stars) == 0:
        return layer.astype(np.float32)
    steps = max(1, int(math.ceil(night.smear_px * 2)) + 1)
    angle = math.radians(night.smear_angle_deg)
    offsets = np.linspace(-0.5, 0.5, steps)[:, None] * night.smear_px * np.array([math.cos(angle), math.sin(angle)])
    radius = int(math.ceil(3.5 * night.psf_sigma_px + night.smear_px / 2)) + 1
    grid = np.arange(-radius, radius + 1)
    for x, y, magnitude in stars:
        flux = sampling.zero_point_dn * 10.0 ** (-0.4 * magnitude)
        if flux < 0.5:
            continue
        col0, row0 = int(math.floor(x)), int(math.floor(y))
        cols, rows = col0 + grid, row0 + grid
        dx = cols[None, :, None] + 0.5 - (x + offsets[:, 0])[:, None, None]  # (steps, 1?, ...)
        dy = rows[None, :, None] + 0.5 - (y + offsets[:, 1])[:, None, None]
        weights_x = np.exp(-0.5 * (dx[:, :, 0] / night.psf_sigma_px) ** 2)  # (steps, n)
        weights_y = np.exp(-0.5 * (dy[:, :, 0] / night.psf_sigma_px) ** 2)
        stamp = np.einsum("si,sj->ij", weights_y, weights_x)
        stamp *= flux / max(stamp.sum(), 1e-12)
        keep_r = (rows >= 0) & (rows < shape[0])
        keep_c = (cols >= 0) & (cols < shape[1])
        if keep_r.any() and keep_c.any():
            layer[np.ix_(rows[keep_r], cols[keep_c])] += stamp[np.ix_(keep_r, keep_c)]
    return layer.astype(np.float32)


def _city_lights(camera, lon, lat, hit, rng) -> np.ndarray:  # noqa: ANN001
    """Point-like lights on land, clustered like towns: brightness per pixel (DN)."""
    mask = land_mask()
    rows = np.clip(((lat[hit] + 90.0) / 180.0 * mask.shape[0]).astype(int), 0, mask.shape[0] - 1)
    columns = np.clip(((lon[hit] + 180.0) / 360.0 * mask.shape[1]).astype(int), 0, mask.shape[1] - 1)
    on_land = np.zeros(hit.shape, bool)
    on_land[hit] = mask[rows, columns] == 1
    light = np.zeros(hit.shape, np.float32)
    candidates = np.flatnonzero(on_land)
    if len(candidates) == 0:
        return light
    towns = rng.choice(candidates, size=min(len(candidates), int(rng.integers(30, 150))), replace=False)
    for town in towns:
        row, col = divmod(int(town), hit.shape[1])
        size = int(rng.integers(1, 12))
        spots_r = np.clip(row + np.rint(rng.normal(0.0, 1.5, size)).astype(int), 0, hit.shape[0] - 1)
        spots_c = np.clip(col + np.rint(rng.normal(0.0, 1.5, size)).astype(int), 0, hit.shape[1] - 1)
        np.add.at(light, (spots_r, spots_c), rng.uniform(10.0, 120.0, size).astype(np.float32))
    import cv2

    return cv2.GaussianBlur(light, (0, 0), 0.8) * hit


# --- building and reading the night set ------------------------------------------------------------


def night_photo_id(frame: int) -> str:
    """Night photos are roll N of the simulated mission."""
    return simulated_photo_id(frame, roll="N")


def build_night_world(out_dir: Path | str, n_photos: int, sky: Sky, seed: int = 0,
                      tles: Sequence[TLE] | None = None, sampling: NightSampling = NightSampling(),
                      progress: bool = False) -> dict:
    """Render ``n_photos`` night photos into ``out_dir`` (queries/, queries.csv, night.csv, world.json).

    Deterministic from ``seed``; resumable (a photo whose truth file exists is kept). Every photo is
    held out (split ``test``): nothing is trained on night photos.
    """
    from world.sampling import sample_tles

    if n_photos < 0:
        raise ValueError(f"number of night photos must be >= 0, got {n_photos}")
    paths = WorldPaths(Path(out_dir))
    tles = as_tles(tles) if tles is not None else sample_tles()
    parameters = json.loads(json.dumps({
        "night_format_version": NIGHT_FORMAT_VERSION, "n_photos": n_photos, "seed": seed,
        "sampling": {k: v for k, v in sampling.__dict__.items()}, "sky": sky.fingerprint(),
        "tles_sha256": hashlib.sha256(json.dumps([[t.line1, t.line2] for t in tles]).encode()).hexdigest(),
    }))  # fmt: skip
    try:
        finished = json.loads(paths.manifest.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        finished = None
    if finished and finished.get("parameters") == parameters and (paths.root / NIGHT_CSV).is_file():
        return finished
    started = datetime.now(timezone.utc)
    paths.queries.mkdir(parents=True, exist_ok=True)
    frames = range(n_photos)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc="night photos", unit="photo")
    rows, night_rows = [], []
    for frame in frames:
        photo_id = night_photo_id(frame)
        truth_file = paths.queries / f"{photo_id}.json"
        if not truth_file.is_file():
            night = sample_night_view(np.random.default_rng([seed, frame]), tles, sampling)
            rendered = render_night(night, sky, sampling)
            image_path = paths.queries / f"{photo_id}.jpg"
            write_atomically(image_path, rendered.jpeg)
            row = truth_row(RenderedView(night.view, rendered.image, rendered.jpeg, footprint_of(night.view.camera()),
                                         0.0), photo_id, frame, "test", image_path.relative_to(paths.root))
            row["CAPTURE_TIME"] = night.reported_time.isoformat()  # what the photo's metadata says
            write_atomically(truth_file, json.dumps({"row": row, "night": _night_row(photo_id, rendered)}).encode())
        stored = json.loads(truth_file.read_text())
        rows.append(stored["row"])
        night_rows.append(stored["night"])
    write_queries_csv(paths.csv, rows)
    write_csv(paths.root / NIGHT_CSV, NIGHT_COLUMNS, night_rows)
    manifest = {
        "parameters": parameters,
        "built_at": started.isoformat(),
        "build_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1),
        "photos": n_photos,
        "with_6_stars": sum(int(r["STARS_IN_FRAME"]) >= 6 for r in night_rows),
    }
    write_atomically(paths.manifest, json.dumps(manifest, indent=2).encode())
    return manifest


def _night_row(photo_id: str, rendered: RenderedNight) -> dict:
    night = rendered.night
    sub_lat, sub_lon = night.view.nadir_lat, night.view.nadir_lon
    return {
        "PHOTO_ID": photo_id,
        "TRUE_CAPTURE_TIME": night.view.capture_time.isoformat(),
        "ROTATION_ICRS": " ".join(f"{x:.12f}" for x in night.rotation_icrs().ravel()),
        "STARS_IN_FRAME": rendered.stars_in_frame,
        "STARS_RENDERED": rendered.stars_rendered,
        "SUB_POINT_SUN_ELEVATION_DEG": round(float(sun_elevation(sub_lat, sub_lon, night.view.capture_time)), 3),
        "GROUND_FRACTION": round(rendered.ground_fraction, 4),
        "GROUND_FOOTPRINT_WKT": rendered.ground_footprint.wkt if rendered.ground_footprint is not None else "",
        "EXPOSURE_SMEAR_PX": round(night.smear_px, 3),
        "CITY_LIGHTS": int(rendered.city_lights),
    }


def read_night_photos(world_dir: Path | str, min_stars: int = 0, limit: int | None = None) -> list[tuple]:
    """The night set's photos (world.catalogue.WorldPhoto) with their NightTruth, in frame order;
    only those with at least ``min_stars`` catalogue stars in the frame."""
    root = Path(world_dir)
    truths = {}
    with (root / NIGHT_CSV).open(newline="") as handle:
        for row in csv.DictReader(handle):
            truths[row["PHOTO_ID"]] = NightTruth(
                photo_id=row["PHOTO_ID"],
                true_capture_time=datetime.fromisoformat(row["TRUE_CAPTURE_TIME"]),
                rotation_icrs=np.array([float(x) for x in row["ROTATION_ICRS"].split()]).reshape(3, 3),
                stars_in_frame=int(row["STARS_IN_FRAME"]),
                ground_footprint=wkt.loads(row["GROUND_FOOTPRINT_WKT"]) if row["GROUND_FOOTPRINT_WKT"] else None,
                columns=row,
            )
    selected = []
    for photo in read_photos(root, include_limb=True):
        truth = truths.get(photo.photo_id)
        if truth is None or truth.stars_in_frame < min_stars:
            continue
        if limit is not None and len(selected) >= limit:
            break
        selected.append((photo, truth))
    return selected

