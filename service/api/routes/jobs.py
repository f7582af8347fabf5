"""GET /jobs/{id} and POST /jobs/selftest: job status, and a job that checks the workers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request, status

from service import crud
from service.api.deps import ApiKeyDep, ReadKeyDep, SessionDep, SettingsDep
from service.api.schemas import JobCreated, JobOut, Message
from service.jobs import SelftestParams, enqueue, redact_paths

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post(
    "/selftest",
    response_model=JobCreated,
    status_code=status.HTTP_202_ACCEPTED,
    dependencies=[ApiKeyDep],
)
def create_selftest_job(body: SelftestParams, request: Request, settings: SettingsDep) -> JobCreated:
    """Queue a job that only sleeps and reports progress: checks that workers consume jobs."""
    job_id = enqueue(settings, "selftest", body)
    return JobCreated(job_id=job_id, status_url=str(request.url_for("get_job", job_id=job_id)))


# Declared after /jobs/selftest so that the router's first match for that path is the POST route
# (an OPTIONS or PUT of /jobs/selftest is answered with the methods of /jobs/selftest).
@router.get("/{job_id}", response_model=JobOut, responses={404: {"model": Message}}, dependencies=[ReadKeyDep])
def get_job(job_id: Annotated[str, Path(max_length=64)], session: SessionDep, settings: SettingsDep) -> JobOut:
    """Status and progress of a job; `result` once finished, `error` once failed."""
    job = crud.get_job(session, job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id[:64]!r}")
    return JobOut.model_validate(redact_paths(settings, JobOut.model_validate(job, from_attributes=True).model_dump(mode="json")))
