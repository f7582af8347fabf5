"""POST /localize behind the route: region, retrieval, storage and the refinement job.

The synchronous part answers within a second or two: it decides where to search (the ISS
visibility region, or worldwide and why), retrieves the top-k tiles, stores the photo and queues
the refinement job (worker/localize.py). Everything that can reject the request runs before
anything is stored, so a refused request leaves no trace.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.exc import IntegrityError

from geo import footprint_polygon
from service import crud
from service.config import Settings
from service.db import session_scope
from service.models import Job, Photo
from service.photos import decode_rgb, store_image
from service.retrieval import get_engine
from service.search_region import search_region
from worker.queue import submit_job

log = logging.getLogger(__name__)


class PhotoConflict(ValueError):
    """The photo_id is already stored with a different image (a 409)."""


@dataclass
class LocalizeRequest:
    """What the route validated: the image bytes and the form fields."""

    image_data: bytes
    image_format: str  # JPEG | PNG | TIFF
    timestamp: datetime | None = None
    nadir: tuple[float, float] | None = None  # (lat, lon)
    photo_id: str | None = None
    top_k: int = 10
    refine: bool = True
    search: str = "auto"
    reference_footprint: BaseGeometry | None = None


@dataclass
class LocalizeAnswer:
    body: dict
    created: bool  # False: an earlier identical request's job is returned (idempotent re-post)


def parse_reference_footprint(text: str | None) -> BaseGeometry | None:
    """A catalogue footprint given as GeoJSON Polygon or as four ``[lon, lat]`` corners."""
    if text is None or not text.strip():
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"reference_footprint is not JSON: {exc}") from None
    if isinstance(value, dict):
        try:
            geometry = shape(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"reference_footprint is not a GeoJSON geometry: {exc}") from None
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
            raise ValueError("reference_footprint must be a valid GeoJSON Polygon")
        return geometry
    if isinstance(value, list) and len(value) == 4:
        try:
            return footprint_polygon([(float(lat), float(lon)) for lon, lat in value])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"reference_footprint corners: {exc}") from None
    raise ValueError("reference_footprint must be a GeoJSON Polygon or four [lon, lat] corners")


def submit_localization(settings: Settings, request: LocalizeRequest, status_url) -> LocalizeAnswer:  # noqa: ANN001
    """Run the synchronous part of a localization and queue its refinement.

    ``status_url(job_id)`` builds the job's URL. Raises ValueError (bad input, 422),
    PhotoConflict (409) or service.retrieval.RetrievalUnavailable (503).
    """
    sha = hashlib.sha256(request.image_data).hexdigest()
    photo_id = request.photo_id or f"PHOTO-{uuid.uuid4().hex[:12].upper()}"

    with session_scope(settings.resolved_database_url) as session:
        existing = crud.get_photo(session, photo_id)
        if existing is not None:
            if existing.image_sha256 != sha:
                raise PhotoConflict(
                    f"photo_id {photo_id!r} is already stored with a different image "
                    f"(sha256 {existing.image_sha256[:12]}...); use another photo_id"
                )
            job = crud.latest_job_of_photo(session, photo_id, kind="localize")
            if job is not None and job.status != "failed":
                return LocalizeAnswer(_duplicate_body(job, photo_id, status_url), created=False)
        region = search_region(
            settings, session, timestamp=request.timestamp, nadir=request.nadir, mode=request.search
        )

    engine = get_engine(settings)
    started = time.perf_counter()
    image = decode_rgb(request.image_data)
    result = engine.search(image, region.region, k=request.top_k)
    retrieval_s = round(time.perf_counter() - started, 4)
    candidates = [hit.to_dict() for hit in result.hits]
    search = region.to_dict() | {"retrieval_reason": result.reason, "shards_searched": result.shards_searched,
                                 "retrieval_s": retrieval_s}

    # Stored only now that everything that can refuse the request has run.
    _sha, path = store_image(settings.data_dir, request.image_data, request.image_format)
    params = {
        "photo_id": photo_id,
        "image_path": str(path),
        "candidates": [{k: c[k] for k in ("tile", "zoom", "rotation", "score")} for c in candidates],
        "refine": request.refine,
        "model_version": engine.model_ref.index_key,
        "retrieval_s": retrieval_s,
        "reference": mapping(request.reference_footprint) if request.reference_footprint else None,
    }
    try:
        with session_scope(settings.resolved_database_url) as session:
            if existing is None:
                session.add(
                    Photo(
                        photo_id=photo_id,
                        captured_at=request.timestamp,
                        nadir_lat=request.nadir[0] if request.nadir else None,
                        nadir_lon=request.nadir[1] if request.nadir else None,
                        image_path=str(path),
                        image_sha256=sha,
                        status="queued",
                        meta={"format": request.image_format, "search": search["mode"]},
                    )
                )
                session.flush()
                if request.reference_footprint is not None:
                    crud.add_footprint(session, photo_id, request.reference_footprint, method="catalogue")
            job = crud.create_job(
                session, "localize", params, queue="localize",
                max_attempts=settings.job_max_attempts, photo_id=photo_id,
            )
            session.commit()
            submit_job(settings, job)
            job_id = job.id
    except IntegrityError:
        # Two identical requests raced: the other one stored the photo first.
        raise PhotoConflict(f"photo_id {photo_id!r} is being submitted concurrently; retry") from None

    return LocalizeAnswer(
        {
            "job_id": job_id,
            "photo_id": photo_id,
            "status_url": status_url(job_id),
            "duplicate": False,
            "search": search,
            "candidates": candidates,
        },
        created=True,
    )


def _duplicate_body(job: Job, photo_id: str, status_url) -> dict:  # noqa: ANN001
    params = job.params or {}
    return {
        "job_id": job.id,
        "photo_id": photo_id,
        "status_url": status_url(job.id),
        "duplicate": True,
        "status": job.status,
        "search": None,
        "candidates": params.get("candidates", []),
    }
