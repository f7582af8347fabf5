"""The refinement job's answer: the footprint stored (through crud) and the result built.

A retried job (its worker was killed) reuses the footprint an earlier attempt stored, so a photo
never gets two footprints from one job.
"""

from __future__ import annotations

from shapely.geometry import mapping, shape

from geo import footprint_iou, geodesic_area_km2
from service import crud
from service.models import PhotoStatus
from service.config import Settings
from service.db import session_scope
from service.localize.contracts import LatLon, LocalizeResult, RankedCandidate, RetrievalSummary
from service.localize.refine import Refinement


def record_refinement(settings: Settings, job_id: str, refinement: Refinement) -> LocalizeResult:
    """Store what the job found (photo status; the footprint when localized) and build its answer."""
    params = refinement.params
    candidates = refinement.candidates
    retrieval = RetrievalSummary(candidates=len(candidates), best_score=candidates[0].score if candidates else None,
                                 seconds=params.retrieval_s)
    if not params.refine:
        _set_status(settings, params.photo_id, PhotoStatus.RETRIEVED)
        return LocalizeResult(localized=False, refined=False, reason="refinement not requested (refine=false)",
                              candidates=candidates, retrieval=retrieval)
    if not candidates:
        _set_status(settings, params.photo_id, PhotoStatus.NOT_LOCALIZED)
        return LocalizeResult(localized=False, refined=True,
                              reason="retrieval found no candidate tile in the search region",
                              retrieval=retrieval, runtime_s=refinement.runtime_s())

    outcome = refinement.result
    runtime = refinement.runtime_s()
    if outcome is None or not outcome.localized or outcome.best is None or outcome.best.footprint is None:
        _set_status(settings, params.photo_id, PhotoStatus.NOT_LOCALIZED)
        reason = (outcome.reason if outcome is not None else None) or "no candidate was accepted"
        return LocalizeResult(localized=False, refined=True, reason=reason, tried=refinement.tried,
                              retrieval=retrieval, runtime_s=runtime)

    best = outcome.best
    index = outcome.matches.index(best)
    footprint = best.footprint
    confidence = best.confidence
    method = best.footprint_method  # e.g. earthmatch-asift-camera
    with session_scope(settings.resolved_database_url) as session:
        stored = crud.footprint_of_job(session, job_id)
        if stored is None:
            stored = crud.add_footprint(
                session, params.photo_id, footprint, method=method, confidence=confidence,
                inliers=best.inliers, model_version=params.model_version, job_id=job_id,
            )
        crud.set_photo_status(session, params.photo_id, PhotoStatus.LOCALIZED)
        session.commit()
        footprint_id = stored.id
    centre = footprint.centroid
    result = LocalizeResult(
        localized=True,
        refined=True,
        footprint=mapping(footprint),
        footprint_id=footprint_id,
        center=LatLon(lat=round(centre.y, 6), lon=round(centre.x, 6)),
        area_km2=round(geodesic_area_km2(footprint), 1),
        confidence=confidence,
        corner_uncertainty_km=best.corner_uncertainty_km,
        inliers=best.inliers,
        candidate=RankedCandidate(**candidates[index].model_dump(), rank=index + 1),
        rotation=best.rotation,
        homography=best.homography,
        method="matching",
        footprint_method=method,
        model_version=params.model_version,
        tried=refinement.tried,
        retrieval=retrieval,
        runtime_s=runtime,
    )
    if params.reference:
        result.reference_iou = round(footprint_iou(footprint, shape(params.reference)), 4)
    return result


def _set_status(settings: Settings, photo_id: str, status: PhotoStatus) -> None:
    with session_scope(settings.resolved_database_url) as session:
        crud.set_photo_status(session, photo_id, status)
        session.commit()
