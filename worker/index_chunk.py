"""The ``index-chunk`` job: one chunk of a planned index build described (service.index_jobs)."""

from __future__ import annotations

from service.index_jobs import IndexChunkParams, describe_chunk
from service.jobs import JobContext


def run(context: JobContext, params: dict) -> dict:
    return describe_chunk(context.settings, IndexChunkParams.model_validate(params))
