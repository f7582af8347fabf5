"""The ``localize`` job (POST /localize's refinement): params -> EarthMatch -> footprint stored -> answer."""

from __future__ import annotations

from service.jobs import JobContext
from service.localize.contracts import LocalizeJobParams
from service.localize.refine import refine_job
from service.localize.result import record_refinement


def run(context: JobContext, raw: dict) -> dict:
    params = LocalizeJobParams.model_validate(raw)
    refinement = refine_job(context.settings, params, progress=context.progress)
    return record_refinement(context.settings, context.job_id, refinement).to_json()
