"""Request dependencies: settings, DB session, API key, upload checks."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request, UploadFile
from PIL import Image, UnidentifiedImageError
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import session_scope


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

IMAGE_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "TIFF": "image/tiff"}
IMAGE_MEDIA_TYPES = {"image/jpeg", "image/jpg", "image/png", "image/tiff", "application/octet-stream"}


@dataclass(frozen=True)
class ImageUpload:
    data: bytes
    format: str  # JPEG | PNG | TIFF, from the bytes, not from the client's word
    width: int
    height: int
    filename: str | None


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
    if not data:
        raise HTTPException(422, "the image file is empty (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in IMAGE_FORMATS:
                raise HTTPException(415, f"unsupported image format {image.format}; send JPEG, PNG or TIFF")
            width, height = image.size
            if width * height > settings.max_image_pixels:
                raise HTTPException(
                    413, f"image of {width}x{height} pixels exceeds {settings.max_image_pixels} pixels"
                )
            image.load()  # decodes everything: truncated data fails here
            image_format = image.format
    except HTTPException:
        raise
    except UnidentifiedImageError:
        raise HTTPException(415, "the upload is not an image (JPEG, PNG or TIFF expected)") from None
    except Image.DecompressionBombError as exc:
        raise HTTPException(413, f"image refused as a decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise HTTPException(422, f"the image could not be decoded (corrupt or truncated): {exc}") from None
    return ImageUpload(data, image_format, width, height, upload.filename)
