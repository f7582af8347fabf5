"""Star detection in a star-tracker frame: pixels -> sub-pixel centroids.

    image = read_frame(open("frame.fits", "rb").read())   # PNG / JPEG / TIFF / FITS, 8 or 16 bit
    detection = detect_stars(image)                       # centroids brightest first

Steps: background (median of 32 x 32 px tiles, smoothed and interpolated back: a sky gradient or
vignetting is removed with it) and noise (MAD of the background-subtracted frame) -> hot pixels
(a pixel far above its 3 x 3 median while its neighbours are not: a star's PSF always spreads light
to its neighbours) replaced by that median -> the frame smoothed by a Gaussian of the PSF's size
(the matched filter) and thresholded at `sigma_threshold` times its own noise -> connected
components -> each component's centroid is the background-subtracted intensity-weighted centre on
the unsmoothed frame, over the component grown by one pixel. Components that are long and thin
(a satellite or aircraft streak, a cosmic-ray track) are dropped; components touching saturated
pixels keep their centroid (the centre of a saturated plateau is still the star's centre) and are
flagged: their flux is only a lower bound.

Pixel convention as in starid.geometry: x right, y down, origin at the top-left corner of the
top-left pixel, so pixel (col, row) has its centre at (col + 0.5, row + 0.5).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import cv2
import numpy as np

from starid.errors import StarInputError

BACKGROUND_TILE_PX = 32
DEFAULT_SIGMA_THRESHOLD = 5.0
DEFAULT_PSF_SIGMA_PX = 1.0
HOT_PIXEL_NEIGHBOUR_FRACTION = 0.2  # a star's brightest neighbour holds >= ~40% of its peak
STREAK_ELONGATION = 4.0  # ratio of the second-moment axes beyond which a blob is a streak
MAX_STAR_AREA_PX = 2500
MAX_STARS = 200
PLATEAU_PIXELS = 3
MAX_FRAME_PIXELS = 64_000_000
FITS_MAGIC = b"SIMPLE  ="


@dataclass
class Frame:
    """A single-channel frame as float64 counts, with the level at which its pixels saturate."""

    pixels: np.ndarray  # (H, W) float64
    saturation_level: float  # inf when the format has no ceiling (float TIFF / FITS)
    bit_depth: int  # 8, 16, 32 or 64 (-32 / -64 FITS floats given as 32 / 64)
    format: str  # "png", "jpeg", "tiff", "fits", "array"

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


@dataclass
class Detection:
    """Centroids of one frame, brightest first, and what the detector measured on the way."""

    xy: np.ndarray  # (N, 2) sub-pixel centroids
    flux: np.ndarray  # (N,) background-subtracted counts summed over the blob
    peak: np.ndarray  # (N,) highest pixel above background
    area_px: np.ndarray  # (N,) pixels in the blob
    saturated: np.ndarray  # (N,) bool: a pixel of the blob reached the saturation level
    background: float  # median background level (counts)
    noise: float  # per-pixel noise sigma (counts)
    threshold: float  # detection threshold on the smoothed frame (counts above background)
    hot_pixels: int  # pixels replaced as hot
    streaks: int  # elongated or extended blobs dropped (streaks, extended objects)
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.flux)

    def to_list(self) -> list[dict]:
        return [
            {
                "x": float(x),
                "y": float(y),
                "flux": float(f),
                "peak": float(p),
                "area_px": int(a),
                "saturated": bool(s),
            }
            for (x, y), f, p, a, s in zip(self.xy, self.flux, self.peak, self.area_px, self.saturated, strict=True)
        ]


def read_frame(data: bytes) -> Frame:
    """Decode a PNG, JPEG, TIFF (8/16-bit or float) or FITS frame; colour is averaged to grey.

    ValueError with the reason for anything else (empty, corrupt, not an image, absurd size).
    """
    if not data:
        raise StarInputError("the frame is empty")
    if data[: len(FITS_MAGIC)] == FITS_MAGIC:
        return _read_fits(data)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
    if decoded is None:
        raise StarInputError("the frame is not a readable PNG, JPEG, TIFF or FITS image")
    kind = _image_kind(data)
    return frame_from_array(decoded, kind)


def frame_from_array(array: np.ndarray, kind: str = "array") -> Frame:
    """A Frame from a 2-D (grey) or 3-D (H, W, channels) array; uint8/uint16 saturate at their max."""
    if array.ndim == 3:
        if array.shape[2] == 4:
            array = array[:, :, :3]  # alpha carries no light
        pixels = array.astype(np.float64).mean(axis=2)
    elif array.ndim == 2:
        pixels = array.astype(np.float64)
    else:
        raise StarInputError(f"a frame must be a 2-D grey or 3-D colour image, got shape {array.shape}")
    if pixels.shape[0] < 16 or pixels.shape[1] < 16:
        raise StarInputError(f"the frame is {pixels.shape[1]} x {pixels.shape[0]} px; at least 16 x 16 needed")
    if pixels.size > MAX_FRAME_PIXELS:
        raise StarInputError(f"the frame has {pixels.size} pixels, more than the {MAX_FRAME_PIXELS} accepted")
    if not np.all(np.isfinite(pixels)):
        pixels = np.nan_to_num(pixels, nan=float(np.nanmedian(pixels)), posinf=0.0, neginf=0.0)
    if np.issubdtype(array.dtype, np.integer):
        saturation, depth = float(np.iinfo(array.dtype).max), int(array.dtype.itemsize * 8)
    else:
        saturation, depth = math.inf, int(array.dtype.itemsize * 8)
    return Frame(pixels, saturation, depth, kind)


def _image_kind(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return "image"


def _read_fits(data: bytes) -> Frame:
    """The first HDU with a 2-D (or 3-D: planes averaged) image; BZERO/BSCALE applied by astropy."""
    from astropy.io import fits

    try:
        with fits.open(io.BytesIO(data), memmap=False) as hdus:
            for hdu in hdus:
                if hdu.data is not None and getattr(hdu.data, "ndim", 0) in (2, 3):
                    bitpix = int(hdu.header.get("BITPIX", -64))
                    array = np.asarray(hdu.data, dtype=np.float64)
                    break
            else:
                raise StarInputError("the FITS file holds no 2-D image")
    except (OSError, TypeError) as exc:
        raise StarInputError(f"the FITS file is not readable: {exc}") from exc
    if array.ndim == 3:
        array = array.mean(axis=0)
    frame = frame_from_array(array, "fits")
    # Integer FITS saturate at the top of their (BZERO-shifted) range: 16-bit unsigned is BITPIX 16
    # with BZERO 32768; a float FITS has no ceiling.
    if bitpix == 8:
        frame.saturation_level, frame.bit_depth = 255.0, 8
    elif bitpix == 16:
        frame.saturation_level, frame.bit_depth = float(array.max()) if array.max() >= 32767 else 65535.0, 16
    else:
        frame.bit_depth = abs(bitpix)
    return frame


def estimate_background(pixels: np.ndarray, tile_px: int = BACKGROUND_TILE_PX) -> np.ndarray:
    """Smooth background: the median of each tile (stars are a small fraction of a tile's pixels),
    a 3 x 3 median over tiles (a bright star or streak filling one tile does not raise it), and
    bilinear interpolation back to full size."""
    height, width = pixels.shape
    rows, cols = max(1, height // tile_px), max(1, width // tile_px)
    cropped = pixels[: rows * tile_px, : cols * tile_px] if height >= tile_px and width >= tile_px else pixels
    if height >= tile_px and width >= tile_px:
        tiles = np.median(cropped.reshape(rows, tile_px, cols, tile_px).transpose(0, 2, 1, 3).reshape(rows, cols, -1), axis=2)
    else:
        tiles = np.full((1, 1), np.median(pixels))
    if rows >= 3 and cols >= 3:
        from scipy.ndimage import median_filter

        tiles = median_filter(tiles, size=3, mode="nearest")
    return cv2.resize(tiles.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def _robust_sigma(values: np.ndarray) -> float:
    median = np.median(values)
    return float(1.4826 * np.median(np.abs(values - median)))


def detect_stars(
    frame: Frame | np.ndarray,
    sigma_threshold: float = DEFAULT_SIGMA_THRESHOLD,
    psf_sigma_px: float = DEFAULT_PSF_SIGMA_PX,
    max_stars: int = MAX_STARS,
    min_area_px: int = 2,
) -> Detection:
    """Centroids of the stars of a frame (see the module docstring), brightest first, at most max_stars."""
    if not isinstance(frame, Frame):
        frame = frame_from_array(np.asarray(frame))
    if not 1.0 <= sigma_threshold <= 100.0:
        raise StarInputError(f"sigma_threshold must lie in [1, 100], got {sigma_threshold}")
    if not 0.3 <= psf_sigma_px <= 20.0:
        raise StarInputError(f"psf_sigma_px must lie in [0.3, 20], got {psf_sigma_px}")
    pixels = frame.pixels
    # A camera that saturates below its container's ceiling (12 bits in 16, a full well reached
    # first) shows it as a plateau: several pixels at exactly the frame's maximum.
    saturation = frame.saturation_level
    top = float(pixels.max())
    if top < saturation and np.count_nonzero(pixels >= top) >= PLATEAU_PIXELS and top > 2 * np.median(pixels) + 1:
        saturation = top
    saturated_mask = pixels >= 0.995 * saturation if math.isfinite(saturation) else None
    background = estimate_background(pixels)
    residual = pixels - background
    noise = max(_robust_sigma(residual[:: max(1, residual.shape[0] // 512), :: max(1, residual.shape[1] // 512)]), 1e-9)

    # Hot pixels: far above the 3 x 3 median, with no neighbour carrying a PSF's share of the light.
    local_median = cv2.medianBlur(residual.astype(np.float32), 3).astype(np.float64)
    neighbour_max = cv2.dilate(residual.astype(np.float32), np.array([[1, 1, 1], [1, 0, 1], [1, 1, 1]], np.uint8)).astype(np.float64)
    excess = residual - local_median
    hot = (excess > sigma_threshold * noise) & (neighbour_max - local_median < HOT_PIXEL_NEIGHBOUR_FRACTION * excess)
    residual = np.where(hot, local_median, residual)

    smoothed = cv2.GaussianBlur(residual, (0, 0), psf_sigma_px)
    smoothed_noise = max(_robust_sigma(smoothed[:: max(1, smoothed.shape[0] // 512), :: max(1, smoothed.shape[1] // 512)]), 1e-9)
    threshold = sigma_threshold * smoothed_noise
    mask = (smoothed > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)

    xs, ys, fluxes, peaks, areas, saturated = [], [], [], [], [], []
    streaks = 0
    grow = np.ones((3, 3), np.uint8)
    for label in range(1, count):
        left, top, box_w, box_h, area = stats[label]
        if area < min_area_px:
            continue
        if area > MAX_STAR_AREA_PX:  # a streak across the frame, or a planet / the Moon
            streaks += 1
            continue
        # The component grown by one pixel, inside its padded bounding box.
        x0, y0 = max(left - 1, 0), max(top - 1, 0)
        x1, y1 = min(left + box_w + 1, pixels.shape[1]), min(top + box_h + 1, pixels.shape[0])
        region = cv2.dilate((labels[y0:y1, x0:x1] == label).astype(np.uint8), grow).astype(bool)
        values = np.where(region, np.maximum(residual[y0:y1, x0:x1], 0.0), 0.0)
        flux = float(values.sum())
        if flux <= 0:
            continue
        rows, cols = np.mgrid[y0:y1, x0:x1]
        cx = float((values * (cols + 0.5)).sum() / flux)
        cy = float((values * (rows + 0.5)).sum() / flux)
        # Second moments: a streak is a blob much longer than it is wide.
        dx, dy = cols + 0.5 - cx, rows + 0.5 - cy
        cxx, cyy, cxy = (values * dx * dx).sum() / flux, (values * dy * dy).sum() / flux, (values * dx * dy).sum() / flux
        spread = math.sqrt(max(((cxx - cyy) / 2) ** 2 + cxy * cxy, 0.0))
        major, minor = (cxx + cyy) / 2 + spread, max((cxx + cyy) / 2 - spread, 1e-6)
        if major / minor > STREAK_ELONGATION**2 and math.sqrt(major) > 2.0 * psf_sigma_px:
            streaks += 1
            continue
        xs.append(cx)
        ys.append(cy)
        fluxes.append(flux)
        peaks.append(float(values.max()))
        areas.append(int(area))
        saturated.append(bool(saturated_mask is not None and saturated_mask[y0:y1, x0:x1][region].any()))
    order = np.argsort(-np.array(fluxes), kind="stable")[:max_stars]
    return Detection(
        xy=np.column_stack([np.array(xs)[order], np.array(ys)[order]]) if xs else np.empty((0, 2)),
        flux=np.array(fluxes)[order] if xs else np.empty(0),
        peak=np.array(peaks)[order] if xs else np.empty(0),
        area_px=np.array(areas, dtype=np.int64)[order] if xs else np.empty(0, np.int64),
        saturated=np.array(saturated, dtype=bool)[order] if xs else np.empty(0, bool),
        background=float(np.median(background)),
        noise=float(noise),
        threshold=float(threshold),
        hot_pixels=int(hot.sum()),
        streaks=streaks,
        width=frame.width,
        height=frame.height,
    )
