"""What turns a clean rendering of the ground into an astronaut photo: the nuisances.

Real ISS photos are seen through the atmosphere and a window, with consumer cameras, sometimes
scanned from film. The pieces, applied by :func:`photograph` in physical order:

1. clouds: a procedural layer fixed to the ground (so oblique views foreshorten it), partial cover;
2. haze: the atmosphere's path radiance, growing with the slant path (air mass) of each ray, and
   the thin blue limb where rays graze the atmosphere above the horizon;
3. the lens: vignetting (darker corners); radial distortion is part of the camera model
   (:mod:`world.camera`), drawn here with the other nuisances;
4. colour: white balance and contrast shifts, or the faded blue cast and grain of old Space
   Shuttle film;
5. occasionally ISS hardware or a window frame blocking one corner;
6. JPEG compression: the caller encodes the photo with :attr:`Nuisances.jpeg_quality`.

All randomness comes from the ``numpy.random.Generator`` passed in, so a seed fixes the photo.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from geo.eol import CORNER_NAMES
from world.camera import Camera, ecef_to_geodetic, intersect_ellipsoid, local_axes

# Sky colour of the limb and haze (RGB, 0-255): the blue of Rayleigh scattering.
_HAZE_RGB = np.array([150.0, 180.0, 225.0], np.float32)
_CLOUD_RGB = np.array([238.0, 240.0, 243.0], np.float32)
_FRAME_RGB = np.array([28.0, 28.0, 31.0], np.float32)
# Scale height of the limb glow above the horizon, km.
_LIMB_SCALE_HEIGHT_KM = 12.0
# Air mass of a spherical atmosphere: homogeneous-layer height over the Earth's mean radius.
_ATMOSPHERE_HEIGHT_KM = 8.0
_EARTH_RADIUS_KM = 6371.0
# Cloud noise: finest cell size (km) and number of octaves (each twice as coarse).
_CLOUD_FINEST_CELL_KM = 12.0
_CLOUD_OCTAVES = 6


@dataclass(frozen=True)
class Nuisances:
    """The drawn parameters of one photo's nuisances (all recorded with its ground truth)."""

    cloud_cover: float  # fraction of the visible ground under cloud, 0..1
    haze_optical_depth: float  # vertical optical depth of the haze; effect grows with air mass
    white_balance: tuple[float, float, float]  # per-channel gains
    contrast: float  # 1 is neutral
    shuttle_film: bool  # faded, blue-cast, grainy scan of old Shuttle film
    vignetting: float  # brightness lost at the image corners, 0..1
    corner_distortion: float  # radial shift of the image corners, fraction (negative: barrel)
    occluded_corner: str | None  # "LL", "UL", "UR", "LR" or None
    jpeg_quality: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.cloud_cover <= 1.0:
            raise ValueError(f"cloud cover must lie in [0, 1], got {self.cloud_cover}")
        if self.haze_optical_depth < 0.0:
            raise ValueError(f"haze optical depth must be >= 0, got {self.haze_optical_depth}")
        if not 0.0 <= self.vignetting < 1.0:
            raise ValueError(f"vignetting must lie in [0, 1), got {self.vignetting}")
        if self.occluded_corner not in (None, *CORNER_NAMES):
            raise ValueError(f"occluded corner must be one of {CORNER_NAMES} or None, got {self.occluded_corner!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"JPEG quality must be in 1..100, got {self.jpeg_quality}")

    def as_dict(self) -> dict:
        return asdict(self)


NO_NUISANCES = Nuisances(
    cloud_cover=0.0,
    haze_optical_depth=0.0,
    white_balance=(1.0, 1.0, 1.0),
    contrast=1.0,
    shuttle_film=False,
    vignetting=0.0,
    corner_distortion=0.0,
    occluded_corner=None,
    jpeg_quality=95,
)


def draw_nuisances(rng: np.random.Generator) -> Nuisances:
    """Draw one photo's nuisances with frequencies loosely like the EOL archive's."""
    has_clouds = rng.random() < 0.7
    return Nuisances(
        cloud_cover=float(rng.uniform(0.05, 0.5)) if has_clouds else 0.0,
        haze_optical_depth=float(rng.uniform(0.02, 0.25)),
        white_balance=tuple(float(g) for g in rng.uniform(0.9, 1.1, size=3)),
        contrast=float(rng.uniform(0.8, 1.15)),
        shuttle_film=bool(rng.random() < 0.12),
        vignetting=float(rng.uniform(0.0, 0.45)),
        corner_distortion=float(rng.uniform(-0.06, 0.01)),
        occluded_corner=str(rng.choice(CORNER_NAMES)) if rng.random() < 0.12 else None,
        jpeg_quality=int(rng.integers(60, 96)),
    )


@dataclass(frozen=True)
class ViewGeometry:
    """Per-pixel geometry of a rendered view, from ray casting (all arrays height x width).

    ``hit``: the ray meets the Earth. ``air_mass``: slant path through the atmosphere relative
    to the vertical one (1 at nadir), for hits. ``ground_xy_km``: (H, W, 2) position of the hit in
    a local east/north plane around the image centre, for hits. ``tangent_altitude_km``: lowest
    altitude of a ray that misses, for the limb glow.
    """

    hit: np.ndarray
    air_mass: np.ndarray
    ground_xy_km: np.ndarray
    tangent_altitude_km: np.ndarray


def cast_view(camera: Camera) -> tuple[np.ndarray, np.ndarray, ViewGeometry]:
    """Ray-cast every pixel of a camera onto the WGS84 ellipsoid.

    Returns per-pixel ``lon``, ``lat`` (degrees, NaN where the ray misses the Earth) and the
    :class:`ViewGeometry` the nuisances need.
    """
    u, v = camera.pixel_centres()
    rays = camera.pixel_rays(u, v)
    points, hit = intersect_ellipsoid(camera.position, rays)
    lon, lat, _ = ecef_to_geodetic(points)
    lam, phi = np.radians(lon), np.radians(lat)
    normals = np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)
    cos_zenith = np.clip(-np.einsum("...i,...i->...", rays, normals), 0.0, 1.0)
    # Air mass of a homogeneous spherical shell (exact for that model, finite at the horizon).
    ratio = _EARTH_RADIUS_KM / _ATMOSPHERE_HEIGHT_KM
    air_mass = np.sqrt((ratio * cos_zenith) ** 2 + 2.0 * ratio + 1.0) - ratio * cos_zenith
    # Ground positions in an east/north plane around the image centre (or below the camera).
    centre_lon, centre_lat = camera.centre_lonlat()
    if not np.isfinite(centre_lon):
        centre_lon, centre_lat, _ = (float(a) for a in ecef_to_geodetic(camera.position))
    east, north, _ = local_axes(centre_lon, centre_lat)
    offsets = points - points[hit].mean(axis=0) if hit.any() else points
    ground_xy_km = np.stack([offsets @ east, offsets @ north], axis=-1) / 1000.0
    # Rays that miss: their closest approach to the Earth's centre, above a mean-radius sphere.
    along = np.clip(-(rays @ camera.position), 0.0, None)
    closest = camera.position + along[..., None] * rays
    tangent_altitude_km = np.linalg.norm(closest, axis=-1) / 1000.0 - _EARTH_RADIUS_KM
    geometry = ViewGeometry(
        hit=hit,
        air_mass=np.where(hit, air_mass, np.nan).astype(np.float32),
        ground_xy_km=np.where(hit[..., None], ground_xy_km, np.nan).astype(np.float32),
        tangent_altitude_km=np.where(hit, np.nan, tangent_altitude_km).astype(np.float32),
    )
    return lon, lat, geometry


def photograph(
    ground_rgb: np.ndarray, geometry: ViewGeometry, nuisances: Nuisances, rng: np.random.Generator
) -> tuple[np.ndarray, float]:
    """Apply every nuisance to a clean render; returns the ``uint8`` photo and the cloud fraction.

    ``ground_rgb``: float (H, W, 3), 0-255, the Earth's colour per pixel (anything where no hit).
    The cloud fraction is the share of Earth pixels under optically thick cloud (opacity > 0.5).
    """
    if ground_rgb.shape[:2] != geometry.hit.shape or ground_rgb.ndim != 3:
        raise ValueError(f"image {ground_rgb.shape} does not match the geometry {geometry.hit.shape}")
    image = np.where(geometry.hit[..., None], ground_rgb, 0.0).astype(np.float32)
    opacity = cloud_opacity(geometry, nuisances.cloud_cover, rng)
    image = image * (1.0 - opacity[..., None]) + _CLOUD_RGB * opacity[..., None]
    image = add_haze(image, geometry, nuisances.haze_optical_depth)
    image = vignette(image, nuisances.vignetting)
    image = shift_colours(image, nuisances, rng)
    if nuisances.occluded_corner:
        image = occlude_corner(image, nuisances.occluded_corner, rng)
    cloud_fraction = float(np.mean(opacity[geometry.hit] > 0.5)) if geometry.hit.any() else 0.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), cloud_fraction


def cloud_opacity(geometry: ViewGeometry, cover: float, rng: np.random.Generator) -> np.ndarray:
    """Cloud opacity (0..1) per pixel: fractal value noise on the ground, thresholded to ``cover``.

    The noise lives in ground kilometres, so clouds keep their size on the ground and appear
    foreshortened towards the horizon of oblique views.
    """
    opacity = np.zeros(geometry.hit.shape, np.float32)
    if cover <= 0.0 or not geometry.hit.any():
        return opacity
    noise = _fractal_noise(geometry.ground_xy_km, geometry.hit, rng)
    on_ground = noise[geometry.hit]
    threshold = np.quantile(on_ground, 1.0 - cover)
    softness = 0.08 * (on_ground.max() - on_ground.min())
    opacity[geometry.hit] = np.clip((on_ground - threshold) / softness + 0.5, 0.0, 1.0)
    return opacity


def _fractal_noise(xy_km: np.ndarray, hit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Octaves of bilinearly interpolated random grids, each twice as fine and about half as strong."""
    low = xy_km[hit].min(axis=0)
    span = xy_km[hit].max(axis=0) - low
    total = np.zeros(hit.shape, np.float32)
    for octave in range(_CLOUD_OCTAVES):
        cell = _CLOUD_FINEST_CELL_KM * 2.0 ** (_CLOUD_OCTAVES - 1 - octave)
        grid = rng.random((int(span[1] / cell) + 2, int(span[0] / cell) + 2), dtype=np.float32)
        coords = np.where(hit[..., None], (xy_km - low) / cell, 0.0).astype(np.float32)
        sampled = cv2.remap(grid, coords[..., 0], coords[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        total += sampled * 0.55**octave
    return total


def add_haze(image: np.ndarray, geometry: ViewGeometry, optical_depth: float) -> np.ndarray:
    """Blend towards the sky colour by the atmosphere's transmission along each ray; light the limb."""
    transmission = np.exp(-optical_depth * np.where(geometry.hit, geometry.air_mass, 0.0))
    hazy = image * transmission[..., None] + _HAZE_RGB * (1.0 - transmission[..., None])
    # Rays missing the Earth still cross the atmosphere: the thin blue line of the limb.
    altitude = np.where(geometry.hit, np.inf, geometry.tangent_altitude_km)
    glow = np.exp(-np.clip(altitude, 0.0, None) / _LIMB_SCALE_HEIGHT_KM)
    return np.where(geometry.hit[..., None], hazy, _HAZE_RGB * glow[..., None])


def vignette(image: np.ndarray, strength: float) -> np.ndarray:
    """Darken towards the corners: a cos^4-like fall-off reaching ``1 - strength`` there."""
    if strength <= 0.0:
        return image
    height, width = image.shape[:2]
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    r2 = ((u + 0.5 - width / 2) ** 2 + (v + 0.5 - height / 2) ** 2) / ((width / 2) ** 2 + (height / 2) ** 2)
    return image * (1.0 - strength * r2**2)[..., None]


def shift_colours(image: np.ndarray, nuisances: Nuisances, rng: np.random.Generator) -> np.ndarray:
    """White balance and contrast, or Shuttle film's faded blue cast with grain."""
    image = image * np.asarray(nuisances.white_balance, np.float32)
    mean = image.mean(axis=(0, 1), keepdims=True)
    image = (image - mean) * nuisances.contrast + mean
    if nuisances.shuttle_film:
        # Aged colour film scans: lifted blacks, a cyan-blue cast, lower saturation, grain.
        grey = image.mean(axis=2, keepdims=True)
        image = 0.7 * image + 0.3 * grey
        image = image * np.array([0.82, 0.95, 1.12], np.float32) + np.array([8.0, 22.0, 40.0], np.float32)
        image = image + rng.normal(0.0, 6.0, image.shape[:2])[..., None].astype(np.float32)
    return image


def occlude_corner(image: np.ndarray, corner: str, rng: np.random.Generator) -> np.ndarray:
    """Cover one corner with the dark rim of a round window (its edge a circle off-centre)."""
    height, width = image.shape[:2]
    column, row = {"LL": (0, 1), "UL": (0, 0), "UR": (1, 0), "LR": (1, 1)}[corner]
    corner_xy = np.array([column * width, row * height], np.float32)
    centre_xy = np.array([width / 2, height / 2], np.float32)
    # A circle through a point 15-35% of the way from the corner to the centre, centred beyond
    # the opposite side: only the chosen corner falls outside it.
    reach = float(rng.uniform(0.15, 0.35))
    edge_point = corner_xy + reach * (centre_xy - corner_xy)
    circle_centre = centre_xy + float(rng.uniform(0.2, 0.6)) * (centre_xy - corner_xy)
    radius = float(np.linalg.norm(edge_point - circle_centre))
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(u + 0.5 - circle_centre[0], v + 0.5 - circle_centre[1])
    frame = np.clip(distance - radius + 0.5, 0.0, 1.0)[..., None]  # one-pixel antialiased edge
    shading = 1.0 + 0.5 * np.clip((distance - radius) / radius, 0.0, 1.0)[..., None]
    return image * (1.0 - frame) + _FRAME_RGB * shading * frame
