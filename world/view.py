"""One simulated photo: its view (ISS position, pointing, lens, nuisances), footprint and rendering."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from shapely import contains_xy
from shapely.geometry import MultiPoint, Polygon
from shapely.geometry.base import BaseGeometry

from geo.footprint import footprint_area_km2
from geo.lonlat import WGS84_GEOD, geodesic_area_km2, unwrap_longitudes
from geo.matching import detect
from index.sources import encode_jpeg
from index.tiles import EQUATORIAL_RADIUS_M, wrap_longitudes
from world.bluemarble import EquirectangularTexture, blue_marble, land_mask
from world.camera import (
    FULL_FRAME_WIDTH_MM,
    Camera,
    ecef_to_geodetic,
    focal_px_from_mm,
    k1_for_corner_distortion,
    pointed_camera,
)
from world.photosim import NO_NUISANCES, Nuisances, cast_view, photograph

_LAND_PROBE_GRID = 16  # rays per image side used to measure a view's land fraction


@dataclass(frozen=True)
class ViewSpec:
    """Everything that determines one simulated photo (render it with :func:`render_view`)."""

    capture_time: datetime  # timezone-aware, UTC
    nadir_lon: float  # ISS sub-point, degrees
    nadir_lat: float
    alt_km: float  # ISS altitude above the ellipsoid
    tilt_deg: float  # off-nadir angle of the optical axis
    azimuth_deg: float  # compass direction the camera leans towards
    roll_deg: float  # rotation about the optical axis (see world.camera)
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


def matching_zoom(footprint: Footprint) -> int:
    """The Web-Mercator zoom whose tiles are about as wide as the footprint (at its latitude)."""
    extent_km = math.sqrt(geodesic_area_km2(footprint.polygon))
    lat = footprint.centre[1]
    equator_km = 2.0 * math.pi * EQUATORIAL_RADIUS_M / 1000.0
    return max(0, round(math.log2(equator_km * math.cos(math.radians(lat)) / extent_km)))


def land_fraction(camera: Camera) -> float:
    """Share of the ground seen by a camera that is land (basemap's 10' land/sea mask, lakes as water)."""
    fractions = (np.arange(_LAND_PROBE_GRID) + 0.5) / _LAND_PROBE_GRID
    u, v = np.meshgrid(fractions * camera.width, fractions * camera.height)
    points, hit = camera.ground_points(u, v)
    if not hit.any():
        return 0.0
    lon, lat, _ = ecef_to_geodetic(points[hit])
    mask = land_mask()
    rows = np.clip(((lat + 90.0) / 180.0 * mask.shape[0]).astype(int), 0, mask.shape[0] - 1)
    columns = np.clip(((lon + 180.0) / 360.0 * mask.shape[1]).astype(int), 0, mask.shape[1] - 1)
    return float(np.mean(mask[rows, columns] == 1))


def ground_keypoints(corners: Sequence[Sequence[float]], contrast: float, side_px: int = 512,
                     texture: EquirectangularTexture | None = None) -> int:
    """How many keypoints the matcher's detector (geo.matching.detect, SIFT at ``contrast``) finds
    on the noiseless Blue Marble ground inside a footprint, drawn plate carrée (aspect kept at its
    latitude) with ``side_px`` on the longer side. No photo of that ground, however clean, can be
    matched by more: it tells a texture-limited miss (open ocean, ice) from a matcher's failure.
    ``corners``: four (lat, lon) in EOL order, as WorldPhoto.corners."""
    lat_lon = np.asarray(corners, dtype=float)
    lat = lat_lon[:, 0]
    lon = unwrap_longitudes(lat_lon[:, 1], float(lat_lon[0, 1]))
    outline = Polygon(np.column_stack([lon, lat]))
    west, south, east, north = outline.bounds
    aspect = (north - south) / max(1e-9, (east - west) * math.cos(math.radians((north + south) / 2.0)))
    width, height = (side_px, max(8, round(side_px * aspect))) if aspect <= 1.0 else (max(8, round(side_px / aspect)), side_px)
    grid_lon, grid_lat = np.meshgrid(np.linspace(west, east, width), np.linspace(north, south, height))
    rgb = (texture or blue_marble()).sample((grid_lon + 180.0) % 360.0 - 180.0, grid_lat)
    inside = contains_xy(outline, grid_lon, grid_lat).astype(np.uint8) * 255
    return len(detect(np.clip(rgb, 0, 255).astype(np.uint8), max_features=0, mask=inside, contrast=contrast))
