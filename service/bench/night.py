"""`astroloc bench localize --night`: night photos localized by their stars (issue 20).

Every photo of the night set (service.night_world; `astroloc world build --night N`) goes
through the star path exactly as the localization job runs it (service.localize.stars.locate_by_stars:
sky, centroids, ROSIA, the solution's checks, the footprint), with the capture time as the photo's
metadata gives it (rounded to the second), the ISS from the world's TLEs by SGP4, and the lens from
the catalogue's FOCAL_MM / SENSOR_WIDTH_MM (the form fields), or, in the second table, no lens at all
(the common ISS lenses tried). Judged against the truth rendered from the true attitude and time:
IoU of the ground footprint, ground-corner errors, the attitude error, and whether the 1-sigma
corner uncertainty covers the error.
"""

from __future__ import annotations

import platform
import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from geo import footprint_iou
from geo.attitude_footprint import corner_errors_km, iss_state_itrs
from service.config import Settings
from service.db import upgrade_database
from service.localize.stars import DEFAULT_MIN_STARS, R90_PER_SIGMA, LensGuess, locate_by_stars
from service.night_world import night_world_dir
from service.star_catalog import active_star_catalog

CORRECT_IOU = 0.8
# A localized photo with an attitude this far off, or a footprint overlapping the truth this
# little, came from a wrong star solution.
WRONG_ATTITUDE_DEG = 0.5
WRONG_IOU = 0.5


@dataclass
class NightOutcome:
    photo_id: str
    stars_in_frame: int
    localized: bool
    reason: str | None
    iou: float | None = None
    corner_errors_km: list[float] | None = None
    corner_sigma_km: list[float] | None = None
    attitude_error_deg: float | None = None
    seconds: float = 0.0

    @property
    def wrong(self) -> bool:
        return self.localized and ((self.iou or 0.0) < WRONG_IOU or (self.attitude_error_deg or 0.0) > WRONG_ATTITUDE_DEG)


def evaluate(settings: Settings, photo, truth, tles, lens_known: bool = True) -> NightOutcome:  # noqa: ANN001
    """One night photo through the star path, judged against its truth."""
    from starid.geometry import rotation_angle_deg

    image = cv2.cvtColor(cv2.imread(str(photo.image_path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    when = datetime.fromisoformat(photo.capture_time)
    state = iss_state_itrs(when, tles)
    columns = photo.columns
    lens = LensGuess.of(float(columns["FOCAL_MM"]), float(columns["SENSOR_WIDTH_MM"])) if lens_known \
        else LensGuess.of(None, None)
    outcome = locate_by_stars(image, when, state, active_star_catalog(settings), lens,
                              starid_budget_s=settings.starid_time_budget_s)
    result = NightOutcome(photo.photo_id, truth.stars_in_frame, outcome.localized, outcome.reason,
                          seconds=outcome.runtime_s)
    if outcome.localized:
        result.iou = float(footprint_iou(outcome.polygon, truth.ground_footprint))
        truth_corners = np.array([[np.nan, np.nan] if c is None else [c[1], c[0]] for c in _corners(photo)])
        errors = corner_errors_km(outcome.footprint.corners, truth_corners)
        result.corner_errors_km = [float(e) for e in errors]
        result.corner_sigma_km = [float(s) for s in outcome.corner_sigma_km]
        result.attitude_error_deg = rotation_angle_deg(outcome.rotation_icrs, truth.rotation_icrs)
    return result


def _corners(photo) -> list[tuple[float, float] | None]:  # noqa: ANN001
    """The catalogue's corners as (lat, lon), None where a corner sees the sky (empty cells)."""
    from geo.eol import CORNER_NAMES

    corners = []
    for name in CORNER_NAMES:
        lat, lon = photo.columns[f"{name}_LAT"], photo.columns[f"{name}_LON"]
        corners.append(None if lat == "" or lon == "" else (float(lat), float(lon)))
    return corners


def run(settings: Settings, photos: int = 150, unknown_lens_photos: int = 40) -> str:
    """Localize the night set by its stars; the markdown of docs/benchmarks.md's section."""
    from world.night import read_night_photos
    from world.sampling import sample_tles

    world = night_world_dir(settings)
    selected = read_night_photos(world, limit=photos)
    if not selected:
        raise FileNotFoundError(f"no night photos in {world}: run `astroloc world build --night 150` first")
    tles = sample_tles()
    upgrade_database(settings.resolved_database_url)  # the catalogue artifact lives in the model store
    active_star_catalog(settings)  # built and compiled before the clock starts
    known = [evaluate(settings, photo, truth, tles) for photo, truth in selected]
    held_out = [o for o in known if o.stars_in_frame >= DEFAULT_MIN_STARS]
    unknown = [evaluate(settings, photo, truth, tles, lens_known=False)
               for photo, truth in selected if truth.stars_in_frame >= DEFAULT_MIN_STARS][:unknown_lens_photos]
    lines = [
        f"{len(known)} simulated night photos of the night set ({world.name}: darkened Blue Marble with city "
        "lights, airglow, Hipparcos stars at their true places for the capture time and attitude, PSF, "
        "0-2 px smear, shot/read noise, hot pixels, JPEG q95; lenses 35/50/85 mm on 1024 x 683 px); the capture "
        "time as the metadata gives it (rounded to the second), the ISS from the world's TLEs (SGP4). "
        f"Held out: the {len(held_out)} with >= {DEFAULT_MIN_STARS} catalogue stars (Hp <= 6) above the limb in the frame. "
        f"In-process, no HTTP; {platform.machine()}, {_cores()} cores.",
        "",
        "| photos | lens | localized | IoU >= 0.8 | median IoU | median ground-corner error (km) | p90 (km) | "
        "median attitude error (arcsec) | wrong footprints | corner error within 1 sigma / the 90% radius | median s/photo |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        _row(f"held out (>= {DEFAULT_MIN_STARS} stars)", "given", held_out),
    ]
    if unknown:
        lines.append(_row(f"first {len(unknown)} held out", "unknown (common lenses tried)", unknown))
    few = [o for o in known if o.stars_in_frame < DEFAULT_MIN_STARS]
    if few:
        lines.append(_row(f"< {DEFAULT_MIN_STARS} stars in frame", "given", few))
    wrong = [o for o in known + unknown if o.wrong]
    refused = [o for o in known if not o.localized]
    reasons = Counter(_reason_kind(o.reason) for o in refused)
    lines += [
        "",
        f"Wrong footprints (IoU < {WRONG_IOU} or attitude > {WRONG_ATTITUDE_DEG} deg off): {len(wrong)}"
        + (": " + ", ".join(f"{o.photo_id} (IoU {o.iou:.2f})" for o in wrong[:5]) if wrong else "") + ". "
        f"Refused, with their reasons ({len(refused)} of {len(known)}): "
        + ("; ".join(f"{count} x {kind}" for kind, count in reasons.most_common()) or "none") + ".",
    ]
    return "\n".join(lines)


def _row(label: str, lens: str, outcomes: list[NightOutcome]) -> str:
    n = len(outcomes)
    if n == 0:
        return f"| {label} | {lens} | - | - | - | - | - | - | - | - | - |"
    localized = [o for o in outcomes if o.localized]
    good = [o for o in localized if (o.iou or 0.0) >= CORRECT_IOU]
    errors = [e for o in localized for e in o.corner_errors_km if np.isfinite(e)]
    pairs = [(e, s) for o in localized for e, s in zip(o.corner_errors_km, o.corner_sigma_km, strict=True)
             if np.isfinite(e) and np.isfinite(s)]
    within1 = sum(e <= s for e, s in pairs) / len(pairs) if pairs else float("nan")
    within90 = sum(e <= R90_PER_SIGMA * s for e, s in pairs) / len(pairs) if pairs else float("nan")
    attitude = [3600.0 * o.attitude_error_deg for o in localized]
    return (
        f"| {n} {label} | {lens} | {len(localized) / n:.1%} | {len(good) / n:.1%} | "
        f"{_median([o.iou for o in localized]):.3f} | {_median(errors):.2f} | "
        f"{np.percentile(errors, 90) if errors else float('nan'):.2f} | {_median(attitude):.1f} | "
        f"{sum(o.wrong for o in outcomes)} | {within1:.0%} / {within90:.0%} | "
        f"{_median([o.seconds for o in outcomes]):.2f} |"
    )


def _median(values) -> float:  # noqa: ANN001
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def _reason_kind(reason: str | None) -> str:
    """The reason without its numbers, to count refusals by kind."""
    if not reason:
        return "no reason"
    if "stars detected above the limb" in reason:
        return "too few stars above the limb"
    if "star identification found no attitude" in reason:
        return "star-ID found no attitude"
    if "disagrees with the photo" in reason:
        return "star solution failed its checks"
    return reason.split(":")[0]


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))
