"""Plain functions over the tables: the only place that writes SQL-ish code.

Spatial queries run in PostGIS (GeoAlchemy2 functions, GiST index) on the production store and fall
back to shapely on the embedded SQLite store.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import shapely
from shapely.prepared import prep
from shapely.geometry.base import BaseGeometry
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db import is_postgis
from service.models import Footprint, Job, JobStatus, ModelVersion, Photo, PhotoStatus, Tle, utcnow

# ---------------------------------------------------------------------------------------------
# jobs

def create_job(
    session: Session,
    kind: str,
    params: dict | None = None,
    *,
    queue: str = "default",
    max_attempts: int = 3,
    photo_id: str | None = None,
) -> Job:
    job = Job(
        kind=kind,
        params=params or {},
        queue=queue,
        status=JobStatus.QUEUED,
        progress=0.0,
        attempts=0,
        max_attempts=max_attempts,
        photo_id=photo_id,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: str) -> Job | None:
    return session.get(Job, job_id)


def claim_job(session: Session, job_id: str, worker: str) -> Job | None:
    """Mark a queued job started by ``worker``; None if it is not queued (already done, or claimed).

    The conditional UPDATE makes a duplicate delivery of the same job a no-op.
    """
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.STARTED,
            attempts=Job.attempts + 1,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            error=None,
        )
    ).rowcount
    session.commit()
    return session.get(Job, job_id, populate_existing=True) if claimed else None


def record_progress(
    session: Session, job_id: str, progress: float | None = None, detail: dict | None = None
) -> None:
    values: dict = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = max(0.0, min(1.0, float(progress)))
    if detail is not None:
        values["detail"] = detail
    session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.STARTED).values(**values))
    session.commit()


def finish_job(session: Session, job_id: str, result: dict) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=JobStatus.FINISHED, progress=1.0, result=result, finished_at=utcnow(), error=None)
    )
    session.commit()


def fail_job(session: Session, job_id: str, error: str) -> None:
    """The job failed with ``error``; so did its photo's localization, when it has one (a photo
    left queued would wait for an answer that never comes)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=JobStatus.FAILED, error=error, finished_at=utcnow())
    )
    photo_id = session.scalar(select(Job.photo_id).where(Job.id == job_id))
    if photo_id is not None:
        set_photo_status(session, photo_id, PhotoStatus.FAILED)
    session.commit()


def abandoned_jobs(session: Session, silent_since: datetime) -> Sequence[Job]:
    """Started jobs whose runner has not sent a heartbeat since ``silent_since`` (it died)."""
    return session.scalars(
        select(Job).where(Job.status == JobStatus.STARTED, Job.heartbeat_at < silent_since)
    ).all()


def requeue_job(session: Session, job_id: str, reason: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=JobStatus.QUEUED, error=reason, worker=None, heartbeat_at=None)
    )
    session.commit()


def queued_jobs(session: Session, older_than: timedelta | None = None) -> Sequence[Job]:
    query = select(Job).where(Job.status == JobStatus.QUEUED)
    if older_than is not None:
        query = query.where(Job.created_at < utcnow() - older_than)
    return session.scalars(query.order_by(Job.created_at)).all()


def jobs_of_kind(session: Session, kind: str, status: JobStatus | None = None) -> Sequence[Job]:
    query = select(Job).where(Job.kind == kind)
    if status is not None:
        query = query.where(Job.status == status)
    return session.scalars(query.order_by(Job.created_at)).all()


def count_waiting_jobs(session: Session, queue: str) -> int:
    """Jobs of ``queue`` not started yet (what its bound counts, service.jobs.require_room)."""
    return session.scalar(select(func.count()).select_from(Job).where(Job.queue == queue, Job.status == JobStatus.QUEUED))


# ---------------------------------------------------------------------------------------------
# photos and footprints


def get_photo(session: Session, photo_id: str) -> Photo | None:
    return session.scalar(select(Photo).where(Photo.photo_id == photo_id))


def photos_by_id(session: Session, photo_ids: Iterable[str]) -> Sequence[Photo]:
    ids = list(photo_ids)
    if not ids:
        return []
    return session.scalars(select(Photo).where(Photo.photo_id.in_(ids))).all()


def latest_job_of_photo(session: Session, photo_id: str, kind: str) -> Job | None:
    """The newest job of ``kind`` for a photo (idempotent re-submission returns it)."""
    return session.scalar(
        select(Job)
        .where(Job.photo_id == photo_id, Job.kind == kind)
        .order_by(Job.created_at.desc())
        .limit(1)
    )


def add_photo(
    session: Session,
    photo_id: str,
    *,
    image_path: str,
    image_sha256: str,
    captured_at: datetime | None = None,
    nadir: tuple[float, float] | None = None,
    status: PhotoStatus = PhotoStatus.QUEUED,
    meta: dict | None = None,
) -> Photo:
    """Store a photo's row (``nadir`` as (lat, lon)); IntegrityError when ``photo_id`` exists."""
    photo = Photo(
        photo_id=photo_id,
        captured_at=captured_at,
        nadir_lat=nadir[0] if nadir else None,
        nadir_lon=nadir[1] if nadir else None,
        image_path=image_path,
        image_sha256=image_sha256,
        status=status,
        meta=meta or {},
    )
    session.add(photo)
    session.flush()
    return photo


def set_photo_status(session: Session, photo_id: str, status: PhotoStatus) -> None:
    photo = get_photo(session, photo_id)
    if photo is not None:
        photo.status = status


def add_footprint(
    session: Session,
    photo_id: str,
    geom: BaseGeometry,
    *,
    method: str,
    confidence: float | None = None,
    inliers: int | None = None,
    model_version: str | None = None,
    job_id: str | None = None,
) -> Footprint:
    if geom.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"a footprint is a Polygon or MultiPolygon, not a {geom.geom_type}")
    if not geom.is_valid or geom.is_empty:
        raise ValueError(f"footprint geometry is not a valid polygon: {shapely.is_valid_reason(geom)}")
    footprint = Footprint(
        photo_id=photo_id,
        geom=geom,
        method=method,
        confidence=confidence,
        inliers=inliers,
        model_version=model_version,
        job_id=job_id,
        created_at=utcnow(),
    )
    session.add(footprint)
    session.flush()
    return footprint


def footprint_of_job(session: Session, job_id: str) -> Footprint | None:
    """The footprint a job stored (a retried job finds its earlier attempt's)."""
    return session.scalar(select(Footprint).where(Footprint.job_id == job_id).limit(1))


# Footprints a catalogue supplied (method "catalogue") are references, not our answer.
REFERENCE_METHOD = "catalogue"


def latest_footprint(session: Session, photo_id: str) -> Footprint | None:
    """The photo's newest footprint computed by us (catalogue references excluded)."""
    return session.scalar(
        select(Footprint)
        .where(Footprint.photo_id == photo_id, Footprint.method != REFERENCE_METHOD)
        .order_by(Footprint.created_at.desc(), Footprint.id.desc())
        .limit(1)
    )


def reference_footprint(session: Session, photo_id: str) -> Footprint | None:
    """The footprint the photo's catalogue row supplied, if any."""
    return session.scalar(
        select(Footprint)
        .where(Footprint.photo_id == photo_id, Footprint.method == REFERENCE_METHOD)
        .order_by(Footprint.id.desc())
        .limit(1)
    )


def footprints_intersecting(
    session: Session, region: BaseGeometry, limit: int = 1000, *, include_reference: bool = False
) -> list[Footprint]:
    """Footprints whose polygon intersects ``region`` (lon/lat), newest first; catalogue
    references only when asked."""
    base = select(Footprint)
    if not include_reference:
        base = base.where(Footprint.method != REFERENCE_METHOD)
    if is_postgis(session):
        # ST_Intersects uses the GiST index on footprints.geom.
        query = (
            base.where(func.ST_Intersects(Footprint.geom, func.ST_GeomFromText(region.wkt, 4326)))
            .order_by(Footprint.created_at.desc(), Footprint.id.desc())
            .limit(limit)
        )
        return list(session.scalars(query).all())
    candidates = session.scalars(base.order_by(Footprint.created_at.desc(), Footprint.id.desc())).all()
    prepared = prep(region)
    return [fp for fp in candidates if prepared.intersects(fp.geom)][:limit]


# ---------------------------------------------------------------------------------------------
# TLEs


def import_tles(
    session: Session, tles: Iterable[tuple[int, str | None, datetime, str, str]]
) -> tuple[int, int]:
    """Store (norad_id, name, epoch, line1, line2) rows; returns (added, already_present)."""
    added = present = 0
    for norad_id, name, epoch, line1, line2 in tles:
        exists = session.scalar(select(Tle.id).where(Tle.norad_id == norad_id, Tle.epoch == epoch))
        if exists is not None:
            present += 1
            continue
        session.add(Tle(norad_id=norad_id, name=name, epoch=epoch, line1=line1, line2=line2))
        session.flush()
        added += 1
    return added, present


def list_tles(session: Session, norad_id: int) -> Sequence[Tle]:
    return session.scalars(select(Tle).where(Tle.norad_id == norad_id).order_by(Tle.epoch)).all()


# ---------------------------------------------------------------------------------------------
# model versions


def list_model_versions(session: Session, kind: str | None = None) -> Sequence[ModelVersion]:
    query = select(ModelVersion).order_by(ModelVersion.created_at.desc(), ModelVersion.id.desc())
    if kind:
        query = query.where(ModelVersion.kind == kind)
    return session.scalars(query).all()


def active_model_version(session: Session, kind: str) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.active.is_(True))
    )


def activate_model_version(session: Session, version_id: int) -> ModelVersion:
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise LookupError(f"no model version with id {version_id}")
    session.execute(
        update(ModelVersion)
        .where(ModelVersion.kind == version.kind, ModelVersion.id != version_id)
        .values(active=False)
    )
    session.flush()  # the partial unique index allows one active row per kind
    version.active = True
    session.flush()
    return version
