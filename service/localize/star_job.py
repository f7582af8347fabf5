"""The star path in the service: POST /localize plans it, the localization job runs it.

:func:`plan_star_path` decides, before anything is stored, whether the job takes the star path:
``method=stars`` always (a 422 when it cannot run: no capture time, no ISS position), ``auto`` for
a photo that is not in daylight and shows enough stars above the limb (service.localize.stars'
quick look), then with matching as the fall-back; the lens comes from the form, else EXIF, else
the common ISS lenses are tried. :func:`star_path_job` runs service.localize.stars.locate_by_stars
on the stored photo and stores the footprint (method ``stars``) through crud.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry import mapping, shape

from geo import footprint_iou, geodesic_area_km2
from geo.attitude_footprint import iss_state_itrs
from service import crud
from service.models import PhotoStatus
from service.config import Settings
from service.db import session_scope
from service.localize.contracts import (
    Attitude,
    LatLon,
    LocalizeJobParams,
    LocalizeResult,
    RetrievalSummary,
    StarPathCheck,
    StarPathParams,
    StarPathSummary,
    StarUsed,
)
from service.localize.stars import (
    R90_PER_SIGMA,
    LensGuess,
    StarPathOutcome,
    count_sky_stars,
    locate_by_stars,
)
from service.orbit import stored_tles
from service.photos import read_rgb, stored_photo_path
from service.star_catalog import active_star_catalog
from service.errors import InvalidInput

if TYPE_CHECKING:
    from service.exif import PhotoExif

STAR_FOOTPRINT_METHOD = "stars"  # the footprints table's method of a star-path footprint
# The answer's corners run top-left, top-right, bottom-right, bottom-left; EOL's LL, UL, UR, LR.
_ANSWER_CORNER_ORDER = (1, 2, 3, 0)


def corner_radii_90_km(sigma_km: np.ndarray | None) -> list[float | None] | None:
    """The answer's corner_uncertainty_km from the star path's 1-sigma corner errors: the radius holding
    the true corner 90% of the time (a circular Gaussian's: sqrt(ln 10) = 1.52 times its rms radius),
    in the answer's corner order; null for a corner that sees the sky."""
    if sigma_km is None:
        return None
    return [None if not np.isfinite(sigma_km[k]) else round(float(R90_PER_SIGMA * sigma_km[k]), 3)
            for k in _ANSWER_CORNER_ORDER]


@dataclass
class StarPlan:
    """How POST /localize routes a photo: the star path's job params, or why not (and the stars seen)."""

    params: StarPathParams | None
    reason: str | None
    detected: int | None = None

    def to_json(self) -> dict:
        """The accepted answer's ``star_path``: planned or not, and why."""
        return {"planned": self.params is not None, "reason": self.reason, "detected_above_limb": self.detected,
                "fov_source": self.params.fov_source if self.params else None}


def plan_star_path(settings: Settings, session, *, method: str, image_rgb: np.ndarray, exif: PhotoExif | None,  # noqa: ANN001
                   timestamp: datetime | None, daylight: bool | None, focal_mm: float | None,
                   sensor_width_mm: float | None) -> StarPlan:
    """Decide whether the job takes the star path (``method`` stars, or auto for a night photo with
    enough stars above the limb); InvalidInput (a 422) when ``stars`` is asked for and cannot run."""
    if method == "matching":
        return StarPlan(None, "matching requested")
    problem = None
    if timestamp is None:
        problem = "the star path needs the capture time (the Earth's rotation and the ISS position)"
    else:
        try:
            iss_state_itrs(timestamp, stored_tles(session, settings.norad_id), settings.tle_max_age_days)
        except ValueError as exc:
            problem = f"the star path needs the ISS position at the capture time: {exc}"
    if problem:
        if method == "stars":
            raise InvalidInput(problem)
        return StarPlan(None, problem)
    detected = None
    if method == "auto":
        if daylight:
            return StarPlan(None, "daylight at the ISS sub-point: matching")
        detected, refusal = count_sky_stars(image_rgb)
        if refusal:
            return StarPlan(None, refusal, detected)
    if focal_mm is not None:
        lens = LensGuess.of(focal_mm, sensor_width_mm)
    elif exif is not None and exif.focal_35mm:  # the full-frame equivalent: a 36 mm wide sensor
        lens = LensGuess.of(exif.focal_35mm, None, source="exif")
    elif exif is not None and exif.focal_mm:  # the ISS's Nikons are full-frame bodies
        lens = LensGuess.of(exif.focal_mm, sensor_width_mm, source="exif")
    else:
        lens = LensGuess.of(None, None)
    params = StarPathParams(capture_time=timestamp, fov_deg=list(lens.fov_deg), fov_source=lens.source,
                            fall_back_to_matching=method == "auto")
    return StarPlan(params, None, detected)


def star_path_job(settings: Settings, job_id: str, params: LocalizeJobParams) -> LocalizeResult:
    """The job's star path: the photo located by its stars, its footprint stored; or the reason."""
    plan = params.stars
    with session_scope(settings.resolved_database_url) as session:
        tles = stored_tles(session, settings.norad_id)
    try:
        state = iss_state_itrs(plan.capture_time, tles, settings.tle_max_age_days)
    except ValueError as exc:
        outcome = StarPathOutcome(False, f"the ISS position at the capture time is unknown: {exc}")
    else:
        # Full size (within the upload pixel cap): a faint star is a few pixels, a reduced decode loses it.
        image_rgb = read_rgb(stored_photo_path(settings.data_dir, params.image_path))
        outcome = locate_by_stars(image_rgb, plan.capture_time, state, active_star_catalog(settings),
                                  LensGuess(tuple(plan.fov_deg), plan.fov_source), time_sigma_s=plan.time_sigma_s,
                                  starid_budget_s=settings.starid_time_budget_s)
    summary = StarPathSummary(
        localized=outcome.localized, reason=outcome.reason, detected_above_limb=outcome.detected,
        sky_fraction=outcome.sky_fraction, fov_deg=outcome.fov_deg, fov_source=outcome.fov_source,
        checks=[StarPathCheck(name=c.name, ok=c.ok, detail=c.detail) for c in outcome.checks],
        corner_sigma_km=None if outcome.corner_sigma_km is None else
        [None if not np.isfinite(s) else round(float(s), 3) for s in outcome.corner_sigma_km],
        runtime_s=outcome.runtime_s,
    )
    retrieval = RetrievalSummary(candidates=len(params.candidates),
                                 best_score=params.candidates[0].score if params.candidates else None,
                                 seconds=params.retrieval_s)
    if not outcome.localized:
        if not plan.fall_back_to_matching:
            with session_scope(settings.resolved_database_url) as session:
                crud.set_photo_status(session, params.photo_id, PhotoStatus.NOT_LOCALIZED)
                session.commit()
        return LocalizeResult(localized=False, refined=False, method="stars", reason=f"the stars: {outcome.reason}",
                              star_path=summary, retrieval=retrieval, runtime_s=outcome.runtime_s)

    footprint = outcome.polygon
    with session_scope(settings.resolved_database_url) as session:
        stored = crud.footprint_of_job(session, job_id)
        if stored is None:  # a retried job keeps the footprint an earlier attempt stored
            stored = crud.add_footprint(session, params.photo_id, footprint, method=STAR_FOOTPRINT_METHOD,
                                        confidence=None, inliers=len(outcome.stars), job_id=job_id)
        crud.set_photo_status(session, params.photo_id, PhotoStatus.LOCALIZED)
        session.commit()
        footprint_id = stored.id
    centre = outcome.footprint.centre or (footprint.centroid.x, footprint.centroid.y)
    result = LocalizeResult(
        localized=True, refined=False, method="stars", footprint_method=STAR_FOOTPRINT_METHOD,
        footprint=mapping(footprint), footprint_id=footprint_id,
        center=LatLon(lat=round(centre[1], 6), lon=round(centre[0], 6)),
        area_km2=round(geodesic_area_km2(footprint), 1),
        corner_uncertainty_km=corner_radii_90_km(outcome.corner_sigma_km),
        attitude=Attitude(**outcome.attitude()), stars_used=[StarUsed(**star) for star in outcome.stars],
        star_path=summary, retrieval=retrieval, runtime_s=outcome.runtime_s,
    )
    if params.reference:
        result.reference_iou = round(footprint_iou(footprint, shape(params.reference)), 4)
    return result
