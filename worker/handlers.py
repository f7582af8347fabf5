"""What runs a job, by kind: ONE explicit table. A new job kind = its module in worker/ + one line here.

A handler is a plain function ``(context: service.jobs.JobContext, params: dict) -> result dict``;
it validates ``params`` into its typed model first (service.jobs.SelftestParams,
service.localize.contracts.LocalizeJobParams, model.training.TrainConfig).
"""

from __future__ import annotations

from collections.abc import Callable

from service.jobs import JobContext
from worker import index_chunk, localize, selftest, train

JobHandler = Callable[[JobContext, dict], dict]

HANDLERS: dict[str, JobHandler] = {
    "selftest": selftest.run,
    "localize": localize.run,
    "train": train.run,
    "index-chunk": index_chunk.run,
}
