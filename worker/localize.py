"""The ``localize`` job: a night photo's stars first when planned (service.localize.star_job), else (or
then, under auto) params -> EarthMatch -> footprint stored -> answer."""

from __future__ import annotations

from service.jobs import JobContext
from service.localize.contracts import LocalizeJobParams
from service.localize.refine import refine_job
from service.localize.result import record_refinement
from service.localize.star_job import star_path_job


def run(context: JobContext, raw: dict) -> dict:
    params = LocalizeJobParams.model_validate(raw)
    star_path = None
    if params.stars is not None:  # a night photo: its stars first (service.localize.star_job)
        by_stars = star_path_job(context.settings, context.job_id, params)
        if by_stars.localized or not params.stars.fall_back_to_matching:
            return by_stars.to_json()
        star_path = by_stars.star_path
    refinement = refine_job(context.settings, params, progress=context.progress)
    result = record_refinement(context.settings, context.job_id, refinement)
    if star_path is not None:  # auto: say why the stars gave way, and why matching did not do either
        result.star_path = star_path
        if not result.localized:
            result.reason = f"the stars: {star_path.reason}; matching: {result.reason}"
    return result.to_json()
