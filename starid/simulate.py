"""Star-tracker scenes as in the ROSIA paper's Sec. V: random attitude, noise, false stars.

A scene is the catalogue seen through a pinhole camera (default 14 x 14 deg, 1024 x 1024 px, so
1 px = 0.0137 deg) at a uniformly random attitude, with Gaussian noise on the pixel positions
(sigma per axis, in px) and on the magnitudes, plus false stars at uniformly random pixels. False
stars take magnitudes drawn from the catalogue's own magnitude distribution, so brightness alone
cannot tell them apart. Stars pushed out of the image by the noise are lost, as a detector would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from starid.catalog import StarCatalog
from starid.geometry import merge_by_flux, random_rotation, vectors_to_pixels


@dataclass
class Scene:
    """One simulated frame; hip[i] is the true HIP number of star i, -1 for a false star."""

    pixels: np.ndarray  # (N, 2) x right, y down, origin top-left
    mags: np.ndarray  # (N,)
    hip: np.ndarray  # (N,) int
    rotation: np.ndarray  # true camera -> ICRS
    image_width: int
    image_height: int
    fov_deg: float


def _in_view(
    sky: StarCatalog, rotation: np.ndarray, fov_deg: float, image_width: int, image_height: int
) -> tuple[np.ndarray, np.ndarray]:
    """(catalogue indices, pixels) of the stars ahead of a camera at `rotation` (not yet clipped)."""
    in_camera = sky.vectors @ rotation  # rows: R^T c, the catalogue in the camera frame
    ahead = np.flatnonzero(in_camera[:, 2] > 0.0)
    return ahead, vectors_to_pixels(in_camera[ahead], image_width, image_height, fov_deg)


def _with_false_stars(
    rng: np.random.Generator, rotation: np.ndarray, pixels: np.ndarray, mags: np.ndarray, hip: np.ndarray,
    false_stars: int, false_mags: np.ndarray, image_width: int, image_height: int, fov_deg: float,
) -> Scene:
    """The scene of these stars plus false_stars at uniformly random pixels (magnitudes drawn
    from false_mags), all in random order."""
    false_pixels = rng.uniform((0.0, 0.0), (image_width, image_height), size=(false_stars, 2))
    pixels = np.vstack([pixels, false_pixels])
    mags = np.concatenate([mags, rng.choice(false_mags, size=false_stars)])
    hip = np.concatenate([hip, np.full(false_stars, -1, dtype=np.int64)])
    order = rng.permutation(len(hip))
    return Scene(pixels[order], mags[order], hip[order], rotation, image_width, image_height, fov_deg)


def simulate_scene(
    catalog: StarCatalog,
    rng: np.random.Generator,
    fov_deg: float = 14.0,
    image_width: int = 1024,
    image_height: int = 1024,
    position_noise_px: float = 0.0,
    mag_noise: float = 0.0,
    false_stars: int = 0,
) -> Scene:
    """One scene of the paper's Sec. V setup; stars in random order."""
    rotation = random_rotation(rng)
    ahead, pixels = _in_view(catalog, rotation, fov_deg, image_width, image_height)
    pixels += rng.normal(0.0, position_noise_px, size=pixels.shape) if position_noise_px > 0 else 0.0
    inside = _inside(pixels, image_width, image_height)
    indices = ahead[inside]
    pixels = pixels[inside]
    mags = catalog.magnitudes[indices] + (rng.normal(0.0, mag_noise, len(indices)) if mag_noise > 0 else 0.0)
    hip = catalog.hip[indices].astype(np.int64)
    return _with_false_stars(
        rng, rotation, pixels, mags, hip, false_stars, catalog.magnitudes, image_width, image_height, fov_deg
    )


def _inside(pixels: np.ndarray, width: float, height: float) -> np.ndarray:
    return (pixels[:, 0] >= 0) & (pixels[:, 0] <= width) & (pixels[:, 1] >= 0) & (pixels[:, 1] <= height)


# --- Scenes as a star tracker's detector reports them ---------------------------------------------

# Hipparcos to Hp 8.5 as the sky: at 0.6 mag of photometric noise a star must be 4 sigma brighter
# than it is to pass a mag-6 detection threshold from there, which happens about once in 10^5 stars.
SKY_MAG_LIMIT = 8.5


def build_sky(mag_limit: float = SKY_MAG_LIMIT) -> StarCatalog:
    """The sky the realistic scenes are drawn from: every Hipparcos star to mag_limit, doubles kept."""
    from starid.catalog import build_catalog

    return build_catalog(mag_limit=mag_limit, min_separation_deg=0.0)


def simulate_sensor_scene(
    sky: StarCatalog,
    rng: np.random.Generator,
    fov_deg: float = 14.0,
    image_width: int = 1024,
    image_height: int = 1024,
    position_noise_px: float = 0.0,
    mag_noise: float = 0.0,
    false_stars: int = 0,
    detection_limit_mag: float = 6.0,
    merge_px: float = 2.0,
    radial_k1: float = 0.0,
    fov_error: float = 0.0,
) -> Scene:
    """One frame as a detector reports it, not as the catalogue lists it.

    - Stars closer than merge_px on the sensor are one blob at their flux-weighted centre with their
      summed flux (the blob is credited to its brightest member in `hip`).
    - Every blob gets Gaussian noise on its position (sigma per axis, px) and on its magnitude, and
      is kept when its *observed* magnitude is <= detection_limit_mag: stars fainter than that limit
      in the catalogue appear, catalogue stars brighter than it drop out.
    - radial_k1: barrel (< 0) or pincushion (> 0) distortion r' = r (1 + k1 r^2), r in units of the
      half-width; fov_error: the true field of view is fov_deg * (1 + fov_error) while the scene
      (and so the solver) is told fov_deg.
    - false_stars at uniformly random pixels, with magnitudes of the detected stars' distribution.
    """
    rotation = random_rotation(rng)
    ahead, pixels = _in_view(sky, rotation, fov_deg * (1.0 + fov_error), image_width, image_height)
    if radial_k1:
        centre = np.array([0.5 * image_width, 0.5 * image_height])
        offset = (pixels - centre) / (0.5 * image_width)
        pixels = centre + (pixels - centre) * (1.0 + radial_k1 * (offset**2).sum(axis=1))[:, None]
    margin = merge_px  # a blob straddling the border still has its centre inside
    near = (
        (pixels[:, 0] >= -margin) & (pixels[:, 0] <= image_width + margin)
        & (pixels[:, 1] >= -margin) & (pixels[:, 1] <= image_height + margin)
    )
    indices, pixels = ahead[near], pixels[near]
    if merge_px > 0:
        pixels, flux, brightest, _ = merge_by_flux(pixels, 10.0 ** (-0.4 * sky.magnitudes[indices]), merge_px)
        indices = indices[brightest]
    else:
        flux = 10.0 ** (-0.4 * sky.magnitudes[indices])
    hip = sky.hip[indices].astype(np.int64)
    pixels = pixels + (rng.normal(0.0, position_noise_px, pixels.shape) if position_noise_px > 0 else 0.0)
    mags = -2.5 * np.log10(flux) + (rng.normal(0.0, mag_noise, len(flux)) if mag_noise > 0 else 0.0)
    seen = (mags <= detection_limit_mag) & _inside(pixels, image_width, image_height)
    pixels, mags, hip = pixels[seen], mags[seen], hip[seen]
    pool = mags if len(mags) else np.array([detection_limit_mag])
    return _with_false_stars(
        rng, rotation, pixels, mags, hip, false_stars, pool, image_width, image_height, fov_deg
    )


# --- Rendered frames: what a detector sees -------------------------------------------------------


@dataclass
class RenderedFrame:
    """A rendered frame and its truth: `scene` holds every sky star's true pixel and magnitude."""

    image: np.ndarray  # (H, W) uint16 (or uint8) counts
    scene: Scene  # every rendered star (no noise on positions), hip per star
    hot_pixels: np.ndarray  # (K, 2) x, y pixel centres of the hot pixels
    streak: tuple[float, float, float, float] | None  # x0, y0, x1, y1 of the satellite streak
    electrons_at_mag6: float  # total signal of a mag-6 star
    snr_at_mag6: float


def electrons_for_snr(snr: float, psf_sigma_px: float, read_noise_e: float, sky_e: float) -> float:
    """Total signal (e-) of a star whose SNR is `snr` in an aperture of 4 pi sigma^2 pixels with
    shot noise, sky and read noise: S / sqrt(S + A (sky + read^2)) = snr."""
    area = 4.0 * np.pi * psf_sigma_px**2
    noise = area * (sky_e + read_noise_e**2)
    return 0.5 * (snr**2 + np.sqrt(snr**4 + 4.0 * snr**2 * noise))


def render_frame(
    sky: StarCatalog,
    rng: np.random.Generator,
    fov_deg: float = 14.0,
    image_width: int = 1024,
    image_height: int = 1024,
    snr_at_mag6: float = 10.0,
    psf_sigma_px: float = 1.2,
    read_noise_e: float = 5.0,
    sky_e: float = 20.0,
    bias_adu: float = 100.0,
    gain_e_per_adu: float = 1.0,
    full_well_adu: int = 65535,
    hot_pixels: int = 20,
    streak: bool = True,
    bit_depth: int = 16,
    rotation: np.ndarray | None = None,
) -> RenderedFrame:
    """A star-tracker frame: every sky star as a pixel-integrated Gaussian PSF, sky background,
    shot and read noise, hot pixels, optionally a satellite streak; saturates at full_well_adu
    (then scaled to 8 bits when bit_depth is 8). The exposure puts a mag-6 star at snr_at_mag6."""
    from scipy.special import erf

    rotation = random_rotation(rng) if rotation is None else rotation
    ahead, pixels = _in_view(sky, rotation, fov_deg, image_width, image_height)
    inside = _inside(pixels, image_width, image_height)
    indices, pixels = ahead[inside], pixels[inside]
    mags = sky.magnitudes[indices]
    signal_mag6 = electrons_for_snr(snr_at_mag6, psf_sigma_px, read_noise_e, sky_e)
    electrons = signal_mag6 * 10.0 ** (-0.4 * (mags - 6.0))

    expected = np.full((image_height, image_width), sky_e, dtype=np.float64)
    radius = int(np.ceil(5 * psf_sigma_px)) + 1
    edges = np.arange(0, 2 * radius + 2, dtype=np.float64)
    scale = np.sqrt(2.0) * psf_sigma_px
    for (x, y), total in zip(pixels, electrons, strict=True):
        col0, row0 = int(np.floor(x)) - radius, int(np.floor(y)) - radius
        # Pixel-integrated Gaussian: differences of erf over the pixel edges.
        wx = np.diff(0.5 * erf((col0 + edges - x) / scale))
        wy = np.diff(0.5 * erf((row0 + edges - y) / scale))
        stamp = total * np.outer(wy, wx)
        r0, c0 = max(row0, 0), max(col0, 0)
        r1, c1 = min(row0 + stamp.shape[0], image_height), min(col0 + stamp.shape[1], image_width)
        if r0 < r1 and c0 < c1:
            expected[r0:r1, c0:c1] += stamp[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0]

    line = None
    if streak:
        # A satellite crossing the frame: a line of PSF width, as bright as a mag-4 star per 10 px.
        x0, y0 = rng.uniform(0, image_width), 0.0
        x1, y1 = rng.uniform(0, image_width), float(image_height)
        line = (x0, y0, x1, y1)
        length = np.hypot(x1 - x0, y1 - y0)
        per_px = signal_mag6 * 10.0 ** (-0.4 * (4.0 - 6.0)) / 10.0
        rows, cols = np.mgrid[0:image_height, 0:image_width]
        distance = np.abs((x1 - x0) * (y0 - rows - 0.5) - (x0 - cols - 0.5) * (y1 - y0)) / length
        expected += per_px * np.exp(-0.5 * (distance / psf_sigma_px) ** 2) / (np.sqrt(2 * np.pi) * psf_sigma_px)

    counts = rng.poisson(expected).astype(np.float64) + rng.normal(0.0, read_noise_e, expected.shape)
    adu = bias_adu + counts / gain_e_per_adu
    hot_xy = np.column_stack([rng.integers(0, image_width, hot_pixels), rng.integers(0, image_height, hot_pixels)])
    adu[hot_xy[:, 1], hot_xy[:, 0]] += rng.uniform(2000.0, 30000.0, hot_pixels)
    adu = np.clip(np.rint(adu), 0, full_well_adu)
    if bit_depth == 8:
        image = np.rint(adu * (255.0 / full_well_adu)).astype(np.uint8)
    else:
        image = adu.astype(np.uint16)
    truth = Scene(pixels, mags, sky.hip[indices].astype(np.int64), rotation, image_width, image_height, fov_deg)
    return RenderedFrame(image, truth, hot_xy + 0.5, line, float(signal_mag6), float(snr_at_mag6))
