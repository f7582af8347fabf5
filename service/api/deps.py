"""Request dependencies: settings, DB session, API key, upload checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, Header, HTTPException, Request, UploadFile
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import session_scope
from service.photos import ImageRejected, check_image


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.resolved_database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def require_api_key(
    settings: SettingsDep, x_api_key: Annotated[str | None, Header()] = None
) -> None:
    """Write endpoints need a valid ``X-API-Key`` when keys are configured."""
    if settings.api_keys and x_api_key not in settings.api_keys:
        raise HTTPException(401, "missing or invalid X-API-Key header")


ApiKeyDep = Depends(require_api_key)

IMAGE_MEDIA_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/tiff", "application/octet-stream"}


@dataclass(frozen=True)
class ImageUpload:
    data: bytes
    format: str  # JPEG | PNG | TIFF, from the bytes, not from the client's word
    width: int
    height: int
    filename: str | None
    rgb: np.ndarray  # the one decode of the photo, reused by retrieval


async def read_image_upload(upload: UploadFile, settings: Settings) -> ImageUpload:
    """Read and check an uploaded photo: size cap (413), media type (415), decodable (422).

    The whole image is decoded once here, so truncated files and decompression bombs are refused
    before anything is stored.
    """
    media_type = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media_type not in IMAGE_MEDIA_TYPES:
        raise HTTPException(415, f"unsupported media type {media_type!r}; send JPEG, PNG or TIFF")
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"image larger than {settings.max_upload_bytes} bytes")
    try:
        checked = check_image(data, settings.max_image_pixels)
    except ImageRejected as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return ImageUpload(data, checked.format, checked.width, checked.height, upload.filename, checked.rgb)
