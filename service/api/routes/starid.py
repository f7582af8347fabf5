"""POST /star-id: lost-in-space star identification (service.star_catalog)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from service.api.deps import ApiKeyDep, SettingsDep
from service.api.schemas import Message, StarIdImageIn, StarIdIn
from service.star_catalog import identify_frame, identify_stars


def _inline(schema: dict) -> dict:
    """A model's JSON schema with its $defs inlined, to sit in openapi_extra."""
    definitions = schema.pop("$defs", {})

    def resolve(node):  # noqa: ANN001, ANN202
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].split("/")[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return resolve(schema)


# One route, two bodies: centroids as JSON, or a frame as multipart/form-data.
_BODIES = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _inline(StarIdIn.model_json_schema())},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image", "fov_deg"],
                    "properties": {
                        "image": {"type": "string", "format": "binary",
                                  "description": "PNG, JPEG, TIFF or FITS frame, 8 or 16 bit."},
                        **_inline(StarIdImageIn.model_json_schema())["properties"],
                    },
                }
            },
        },
    }
}

router = APIRouter(tags=["star identification"])


@router.post(
    "/star-id",
    dependencies=[ApiKeyDep],
    responses={413: {"model": Message}, 415: {"model": Message}, 422: {"model": Message}},
    openapi_extra=_BODIES,
)
async def star_id(request: Request, settings: SettingsDep) -> dict:
    """Lost-in-space star identification (ROSIA) from star centroids (pixels) or unit vectors
    (JSON), or from a frame (multipart: `image` PNG/JPEG/TIFF/FITS and `fov_deg`).

    Returns `status` identified | no_result (with `reason`), the HIP number of each star (or
    null), the attitude (quaternion camera -> ICRS, boresight RA/Dec, roll), the field of view it
    was identified at and the runtime; for a frame also `centroids` (sub-pixel x, y, flux,
    saturated, hip, mag) and what the detector measured (`detection`).
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, 'a multipart POST /star-id needs the frame as file field "image"')
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"frame larger than {settings.max_upload_bytes} bytes")
        try:
            fields = StarIdImageIn.model_validate({k: v for k, v in form.items() if k != "image"})
        except ValidationError as exc:
            raise RequestValidationError(exc.errors()) from None
        return await run_in_threadpool(identify_frame, settings, data, **fields.model_dump(exclude_none=True))
    if media_type not in ("application/json", ""):
        raise HTTPException(415, f"unsupported media type {media_type!r}; send JSON or multipart/form-data")
    try:
        body = StarIdIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    return await run_in_threadpool(identify_stars, settings, body.model_dump(exclude_none=True))
