"""The refinement job of POST /localize: EarthMatch over the retrieved candidates, footprint stored.

Params (written by service/localize.py): ``photo_id``, ``image_path``, ``candidates`` (tile,
zoom, rotation, score; best first), ``refine``, ``model_version``, ``reference`` (a catalogue
footprint as GeoJSON, or None). The result is the footprint and how it was found, or
``localized: false`` with the reason. A retried job (worker killed) reuses the footprint an
earlier attempt stored, so a photo never gets two footprints from one job.
"""

from __future__ import annotations

import time

from shapely.geometry import mapping, shape

from geo import footprint_iou, geodesic_area_km2
from geo.refine import RefineParams
from service import crud
from service.db import session_scope
from service.photos import decode_rgb
from service.refinement import confidence_of, refine_photo
from worker.tasks import JobContext, job_handler


@job_handler("localize")
def localize(context: JobContext, params: dict) -> dict:
    settings = context.settings
    started = time.perf_counter()
    photo_id = params["photo_id"]
    candidates = list(params.get("candidates") or [])[: settings.localize_max_candidates]
    retrieval = {"candidates": len(candidates), "best_score": candidates[0]["score"] if candidates else None,
                 "seconds": params.get("retrieval_s")}  # spent in the API before the job was queued

    if not params.get("refine", True):
        _set_status(context, photo_id, "retrieved")
        return {"localized": False, "refined": False, "reason": "refinement not requested (refine=false)",
                "candidates": candidates, "retrieval": retrieval}
    if not candidates:
        _set_status(context, photo_id, "not_localized")
        return {"localized": False, "refined": True, "reason": "retrieval found no candidate tile in the search region",
                "retrieval": retrieval, "runtime_s": round(time.perf_counter() - started, 3)}

    with open(params["image_path"], "rb") as handle:
        query = decode_rgb(handle.read())
    refine_params = RefineParams.from_settings(settings)
    tried: list[dict] = []

    def on_progress(i: int, n: int, match) -> None:  # noqa: ANN001
        tried.append({"tile": candidates[i]["tile"], "rotation": match.rotation, "inliers": match.inliers,
                      "accepted": match.accepted, "reason": match.reason})
        context.progress((i + 1) / n, candidate=i + 1, candidates=n, tried=tried)

    outcome = refine_photo(settings, query, candidates, on_progress=on_progress)
    runtime = round(time.perf_counter() - started, 3)
    if not outcome.localized or outcome.best is None or outcome.best.footprint is None:
        _set_status(context, photo_id, "not_localized")
        return {"localized": False, "refined": True, "reason": outcome.reason or "no candidate was accepted",
                "tried": tried, "retrieval": retrieval, "runtime_s": runtime}

    best = outcome.best
    index = outcome.matches.index(best)
    footprint = best.footprint
    confidence = confidence_of(best, refine_params)
    method = f"earthmatch-{refine_params.features}"
    with session_scope(settings.resolved_database_url) as session:
        stored = crud.footprint_of_job(session, context.job_id)
        if stored is None:
            stored = crud.add_footprint(
                session, photo_id, footprint, method=method, confidence=confidence,
                inliers=best.inliers, model_version=params.get("model_version"), job_id=context.job_id,
            )
        crud.set_photo_status(session, photo_id, "localized")
        session.commit()
        footprint_id = stored.id
    centre = footprint.centroid
    result = {
        "localized": True,
        "refined": True,
        "footprint": mapping(footprint),
        "footprint_id": footprint_id,
        "center": {"lat": round(centre.y, 6), "lon": round(centre.x, 6)},
        "area_km2": round(geodesic_area_km2(footprint), 1),
        "confidence": confidence,
        "inliers": best.inliers,
        "candidate": {**candidates[index], "rank": index + 1},
        "rotation": best.rotation,
        "homography": best.homography,
        "method": method,
        "model_version": params.get("model_version"),
        "tried": tried,
        "retrieval": retrieval,
        "runtime_s": runtime,
    }
    if params.get("reference"):
        result["reference_iou"] = round(footprint_iou(footprint, shape(params["reference"])), 4)
    return result


def _set_status(context: JobContext, photo_id: str, status: str) -> None:
    with session_scope(context.settings.resolved_database_url) as session:
        crud.set_photo_status(session, photo_id, status)
        session.commit()
