"""POST /localize: search region and retrieval now, refinement as a job (service.localize.submit)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from service.api.deps import ApiKeyDep, SettingsDep, read_image_upload
from service.api.schemas import LocalizeAccepted, LocalizeForm, Message
from service.jobs import require_room
from service.localize.retrieval import RetrievalUnavailable
from service.localize.submit import LocalizeRequest, PhotoConflict, parse_reference_footprint, submit_localization

router = APIRouter(tags=["localization"])


@router.post(
    "/localize",
    status_code=202,
    dependencies=[ApiKeyDep],
    response_model=LocalizeAccepted,
    response_model_exclude_unset=True,
    responses={
        200: {"description": "This photo_id was already submitted with this image: its job."},
        409: {"model": Message}, 413: {"model": Message}, 415: {"model": Message},
        422: {"model": Message}, 503: {"model": Message},
    },
)
async def localize(
    image: Annotated[UploadFile, File(description="The photo: JPEG, PNG or TIFF.")],
    form: Annotated[LocalizeForm, Form()],
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> dict:
    """Localize an astronaut photo: search region and retrieval now, refinement as a job.

    Answers 202 with the job (follow `status_url`), the search region (ISS visibility region,
    or worldwide and why; the union of two when the nadir disagrees with the orbit), the
    metadata checks, the Sun's elevation at the sub-point (day or night) and the retrieved
    candidate tiles. Without a time and a nadir the search is world-wide, coarse to fine, and the
    refinement job has a time budget. Re-posting a photo_id with the same
    image returns its existing job (200, `duplicate: true`) unless that job failed.
    """
    require_room(settings, "localize")  # a full queue refuses before the decode and the retrieval (429)
    upload = await read_image_upload(image, settings)
    localize_request = LocalizeRequest(
        image_data=upload.data,
        image_format=upload.format,
        image_rgb=upload.rgb,
        timestamp=form.timestamp,
        nadir=(form.nadir_lat, form.nadir_lon) if form.nadir_lat is not None else None,
        photo_id=form.photo_id,
        top_k=form.top_k,
        refine=form.refine,
        search=form.search,
        reference_footprint=parse_reference_footprint(form.reference_footprint),
        method=form.method,
        focal_mm=form.focal_mm,
        sensor_width_mm=form.sensor_width_mm,
    )

    def status_url(job_id: str) -> str:
        return str(request.url_for("get_job", job_id=job_id))

    try:
        # Retrieval runs torch and FAISS: off the event loop.
        answer = await run_in_threadpool(submit_localization, settings, localize_request, status_url)
    except PhotoConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except RetrievalUnavailable as exc:
        raise HTTPException(503, str(exc)) from None
    if not answer.created:
        response.status_code = 200
    return answer.body
