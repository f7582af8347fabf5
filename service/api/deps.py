"""Request dependencies: settings, DB session, API key, upload checks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import numpy as np
from fastapi import Depends, HTTPException, Request, Security, UploadFile
from fastapi.security import APIKeyHeader
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.db import session_scope
from service.photos import ImageRejected, decode_upload


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_scope(settings.resolved_database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


API_KEY_HEADER = "X-API-Key"
# Two names for the one header, so that the OpenAPI document (service.api.openapi) can tell writes
# from reads and declare each only where these settings require a key.
WRITE_KEY = APIKeyHeader(name=API_KEY_HEADER, scheme_name="WriteKey", auto_error=False)
READ_KEY = APIKeyHeader(name=API_KEY_HEADER, scheme_name="ReadKey", auto_error=False)


def _check_key(settings: Settings, key: str | None) -> None:
    if settings.api_keys and key not in settings.api_keys:
        raise HTTPException(401, f"missing or invalid {API_KEY_HEADER} header",
                            headers={"WWW-Authenticate": API_KEY_HEADER})


def require_api_key(settings: SettingsDep, key: Annotated[str | None, Security(WRITE_KEY)] = None) -> None:
    """Write endpoints need a valid ``X-API-Key`` when keys are configured."""
    _check_key(settings, key)


def require_read_key(settings: SettingsDep, key: Annotated[str | None, Security(READ_KEY)] = None) -> None:
    """Reads of photos, footprints, pictures and jobs need a key too when keys are configured,
    unless ``ASTROLOC_PUBLIC_READS=true``."""
    if not settings.public_reads:
        _check_key(settings, key)


ApiKeyDep = Depends(require_api_key)
ReadKeyDep = Depends(require_read_key)

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
    """Read and check an uploaded photo: size cap (413), media type (415), decodable (422), a free
    decode slot (503, service.photos.DecodeBusy).

    The whole image is decoded once here (at most ``decode_max_side_px``), so truncated files and
    decompression bombs are refused before anything is stored.
    """
    media_type = (upload.content_type or "application/octet-stream").split(";")[0].strip().lower()
    if media_type not in IMAGE_MEDIA_TYPES:
        raise HTTPException(415, f"unsupported media type {media_type!r}; send JPEG, PNG or TIFF")
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise HTTPException(413, f"image larger than {settings.max_upload_bytes} bytes")
    try:
        # Decoding is CPU and memory heavy: off the event loop, a bounded number at once.
        checked = await run_in_threadpool(decode_upload, settings, data)
    except ImageRejected as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return ImageUpload(data, checked.format, checked.width, checked.height, upload.filename, checked.rgb)
