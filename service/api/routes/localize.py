from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from service.api.deps import ApiKeyDep, SettingsDep, read_image_upload
from service.api.schemas import LocalizeForm, Message

router = APIRouter(tags=["localization"])


@router.post(
    "/localize",
    status_code=202,
    dependencies=[ApiKeyDep],
    responses={413: {"model": Message}, 415: {"model": Message}, 501: {"model": Message}},
)
async def localize(
    image: Annotated[UploadFile, File(description="The photo: JPEG, PNG or TIFF.")],
    form: Annotated[LocalizeForm, Form()],
    settings: SettingsDep,
) -> dict:
    """Localize an astronaut photo: retrieval now, refinement as a job (see GET /jobs/{id})."""
    await read_image_upload(image, settings)
    raise HTTPException(501, "localization is not available yet in this version")
