"""POST /localize behind the route: checks, search region, retrieval, the photo stored, the job queued.

The synchronous part answers within a second or two: it decides where to search (the ISS
visibility region, or worldwide and why), retrieves the top-k tiles, stores the photo and queues
the refinement job (worker/localize.py, contract in service/localize/contracts.py). Everything
that can reject the request runs before anything is stored, so a refused request leaves no trace.
The photo arrives decoded (the upload check's one decode) and is hashed once here.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from geo import footprint_polygon
from service import crud, jobs
from service.config import Settings
from service.db import session_scope
from service.localize.candidates import retrieve_candidates
from service.exif import read_exif, upright
from service.localize.contracts import LocalizeJobParams, SearchSummary
from service.localize.region import search_region
from service.localize.retrieval import RetrievalUnavailable, get_engine
from service.localize.star_job import plan_star_path
from service.models import Job, JobStatus, Photo, PhotoStatus
from service.photos import image_sha256, store_image
from service.errors import InvalidInput

log = logging.getLogger(__name__)


class PhotoConflict(ValueError):
    """The photo_id is already stored with a different image (a 409)."""


@dataclass
class LocalizeRequest:
    """What the route validated: the image bytes and the form fields."""

    image_data: bytes
    image_format: str  # JPEG | PNG | TIFF
    image_rgb: np.ndarray  # the decoded photo (service.photos.check_image)
    timestamp: datetime | None = None
    nadir: tuple[float, float] | None = None  # (lat, lon)
    photo_id: str | None = None
    top_k: int = 10
    refine: bool = True
    search: str = "auto"
    reference_footprint: BaseGeometry | None = None
    method: str = "auto"  # auto | stars | matching (service.localize.star_job)
    focal_mm: float | None = None  # the lens, for the star path's field of view
    sensor_width_mm: float | None = None


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
        raise InvalidInput(f"reference_footprint is not JSON: {exc}") from None
    if isinstance(value, dict):
        try:
            geometry = shape(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"reference_footprint is not a GeoJSON geometry: {exc}") from None
        if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
            raise InvalidInput("reference_footprint must be a valid GeoJSON Polygon")
        return geometry
    if isinstance(value, list) and len(value) == 4:
        try:
            return footprint_polygon([(float(lat), float(lon)) for lon, lat in value])
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"reference_footprint corners: {exc}") from None
    raise InvalidInput("reference_footprint must be a GeoJSON Polygon or four [lon, lat] corners")


def submit_localization(settings: Settings, request: LocalizeRequest,
                        status_url: Callable[[str], str]) -> LocalizeAnswer:
    """Run the synchronous part of a localization and queue its refinement.

    ``status_url(job_id)`` builds the job's URL. Raises InvalidInput (bad input, 422),
    PhotoConflict (409) or service.localize.retrieval.RetrievalUnavailable (503).
    """
    sha = image_sha256(request.image_data)
    # What the photo's EXIF says fills in what the form left out (service.exif).
    exif = read_exif(request.image_data)
    timestamp = request.timestamp or exif.captured_at
    image_rgb = upright(request.image_rgb, exif.orientation)
    photo_id = request.photo_id or f"PHOTO-{uuid.uuid4().hex[:12].upper()}"

    with session_scope(settings.resolved_database_url) as session:
        existing, earlier = _earlier_submission(session, photo_id, sha, status_url)
        if earlier is not None:
            return earlier
        region = search_region(
            settings, session, timestamp=timestamp, nadir=request.nadir, mode=request.search,
            reference=request.reference_footprint,
        )
        # Night photos with stars take the star path (a 422 here when method=stars cannot run).
        stars = plan_star_path(settings, session, method=request.method, image_rgb=image_rgb, exif=exif,
                               timestamp=timestamp, daylight=region.daylight, focal_mm=request.focal_mm,
                               sensor_width_mm=request.sensor_width_mm)

    found, engine, retrieval_s = None, None, 0.0
    if stars.params is None or request.method != "stars":  # matching runs, or stands by under auto
        try:
            engine = get_engine(settings)
        except RetrievalUnavailable:
            if stars.params is None:
                raise
        if engine is not None:
            started = time.perf_counter()
            found = retrieve_candidates(settings, engine, image_rgb, region, request.top_k)
            retrieval_s = round(time.perf_counter() - started, 4)
    if found is not None:
        search = SearchSummary(**region.to_dict(), ranking=found.ranking, retrieval_reason=found.reason,
                               shards_searched=found.shards_searched, retrieval_s=retrieval_s).model_dump(mode="json")
    else:
        search = SearchSummary(**region.to_dict(), ranking="none: the star path", shards_searched=0,
                               retrieval_reason="no retrieval: the photo is located by its stars",
                               retrieval_s=0.0).model_dump(mode="json")

    # Stored only now that everything that can refuse the request has run.
    stored_name = store_image(settings.data_dir, request.image_data, request.image_format, sha)
    params = LocalizeJobParams(
        photo_id=photo_id,
        image_path=stored_name,
        candidates=found.candidates if found else [],
        refine=request.refine,
        model_version=engine.model_ref.index_key if engine else None,
        retrieval_s=retrieval_s,
        reference=mapping(request.reference_footprint) if request.reference_footprint else None,
        budget_s=found.budget_s if found else None,
        stars=stars.params,
    )
    try:
        with session_scope(settings.resolved_database_url) as session:
            if existing is None:
                crud.add_photo(
                    session, photo_id, image_path=stored_name, image_sha256=sha, captured_at=timestamp,
                    nadir=request.nadir, status=PhotoStatus.QUEUED,
                    meta={"format": request.image_format, "search": search["mode"], "exif": exif.to_json(),
                          "timestamp_from": "form" if request.timestamp else "exif" if timestamp else None},
                )
                if request.reference_footprint is not None:
                    crud.add_footprint(session, photo_id, request.reference_footprint, method=crud.REFERENCE_METHOD)
            job = jobs.create_job(session, settings, "localize", params, queue="localize", photo_id=photo_id)
            session.commit()
            jobs.submit_job(settings, job)
            job_id = job.id
    except IntegrityError:
        # Two requests for this photo_id raced (e.g. a killed client's request still being served
        # when its restart sends the photo again): the other one stored it first. With the same
        # image its job is this request's answer too, as for any resubmission.
        with session_scope(settings.resolved_database_url) as session:
            _, earlier = _earlier_submission(session, photo_id, sha, status_url)
        if earlier is not None:
            return earlier
        raise PhotoConflict(f"photo_id {photo_id!r} is being submitted concurrently; retry") from None

    return LocalizeAnswer(
        {
            "job_id": job_id,
            "photo_id": photo_id,
            "status_url": status_url(job_id),
            "duplicate": False,
            "search": search,
            "candidates": [hit.to_dict() | {"log_prior": candidate.log_prior}
                           for hit, candidate in zip(found.hits[: request.top_k], found.candidates)] if found else [],
            "method": "stars" if stars.params else "matching",
            "star_path": stars.to_json(),
        },
        created=True,
    )


def _earlier_submission(session: Session, photo_id: str, sha: str,
                        status_url: Callable[[str], str]) -> tuple[Photo | None, LocalizeAnswer | None]:
    """The stored photo of ``photo_id`` (None: not stored), and the answer to a resubmission of
    it: its localize job, unless that one failed (then it is localized again). PhotoConflict
    when it is stored with another image."""
    existing = crud.get_photo(session, photo_id)
    if existing is None:
        return None, None
    if existing.image_sha256 != sha:
        raise PhotoConflict(
            f"photo_id {photo_id!r} is already stored with a different image "
            f"(sha256 {existing.image_sha256[:12]}...); use another photo_id"
        )
    job = crud.latest_job_of_photo(session, photo_id, kind="localize")
    if job is None or job.status == JobStatus.FAILED:
        return existing, None
    return existing, LocalizeAnswer(_duplicate_body(job, photo_id, status_url), created=False)


def _duplicate_body(job: Job, photo_id: str, status_url: Callable[[str], str]) -> dict:
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
