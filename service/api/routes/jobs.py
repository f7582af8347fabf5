"""GET /jobs/{id} and POST /jobs/selftest: job status, and a job that checks the workers."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, status

from service import crud
from service.api.deps import ApiKeyDep, SessionDep, SettingsDep
from service.api.schemas import JobCreated, JobOut, Message
from service.jobs import SelftestParams, enqueue

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/{job_id}", response_model=JobOut, responses={404: {"model": Message}})
def get_job(job_id: str, session: SessionDep) -> JobOut:
    """Status and progress of a job; `result` once finished, `error` once failed."""
    job = crud.get_job(session, job_id)
    if job is None:
        raise HTTPException(404, f"no job with id {job_id!r}")
    return JobOut.model_validate(job, from_attributes=True)


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
