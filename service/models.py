"""ORM tables. The schema itself is created by Alembic migrations (migrations/versions)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import shapely
from geoalchemy2 import Geometry
from shapely.geometry.base import BaseGeometry
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class JobStatus(StrEnum):
    """A job's state: queued -> started -> finished or failed (a started job whose runner died
    goes back to queued)."""

    QUEUED = "queued"
    STARTED = "started"
    FINISHED = "finished"
    FAILED = "failed"


class PhotoStatus(StrEnum):
    """A submitted photo's state: queued until its localization job ends; then localized (a
    footprint is stored), not_localized (the job ran and found no trustworthy answer), retrieved
    (only retrieval was asked for: refine=false) or failed (the job itself failed; its error
    says why)."""

    QUEUED = "queued"
    RETRIEVED = "retrieved"
    LOCALIZED = "localized"
    NOT_LOCALIZED = "not_localized"
    FAILED = "failed"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class GeometryType(TypeDecorator):
    """A shapely geometry in EPSG:4326 (lon/lat).

    PostGIS: a real ``geometry(<kind>, 4326)`` column (GeoAlchemy2 DDL, GiST-indexed by the
    migration), written as EWKT and read back as EWKB. SQLite: WKT text.
    """

    impl = Text
    cache_ok = True
    # GeoAlchemy2's DDL hooks read these off the column type; the migration makes the GiST index.
    spatial_index = False
    use_N_D_index = False

    def __init__(self, geometry_type: str = "GEOMETRY") -> None:
        super().__init__()
        self.geometry_type = geometry_type

    def load_dialect_impl(self, dialect):  # noqa: ANN001
        # GeoAlchemy2's DDL hooks call this with dialect=None to ask "is this spatial?".
        if dialect is None:
            return Text()
        if dialect.name == "postgresql":
            return dialect.type_descriptor(
                Geometry(self.geometry_type, srid=4326, spatial_index=False)
            )
        return dialect.type_descriptor(Text())

    def bind_expression(self, bindvalue):  # noqa: ANN001
        return bindvalue

    def column_expression(self, col):  # noqa: ANN001
        return col

    def process_bind_param(self, value: BaseGeometry | None, dialect) -> str | None:  # noqa: ANN001
        if value is None:
            return None
        if dialect.name == "postgresql":
            return f"SRID=4326;{value.wkt}"
        return value.wkt

    def process_result_value(self, value: Any, dialect) -> BaseGeometry | None:  # noqa: ANN001
        if value is None:
            return None
        if dialect.name == "postgresql":
            data = getattr(value, "data", value)  # WKBElement or hex string
            return shapely.from_wkb(data)
        return shapely.from_wkt(value)


class Base(DeclarativeBase):
    pass


class Photo(Base):
    __tablename__ = "photos"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    nadir_lat: Mapped[float | None] = mapped_column(Float)
    nadir_lon: Mapped[float | None] = mapped_column(Float)
    image_path: Mapped[str | None] = mapped_column(Text)  # relative to the data dir: service.photos.stored_photo_path
    image_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=PhotoStatus.QUEUED)
    meta: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Footprint(Base):
    __tablename__ = "footprints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("photos.photo_id", ondelete="CASCADE"), index=True
    )
    # Polygon, or MultiPolygon split at the antimeridian (migration 0002).
    geom: Mapped[BaseGeometry] = mapped_column(GeometryType("GEOMETRY"))
    confidence: Mapped[float | None] = mapped_column(Float)
    inliers: Mapped[int | None] = mapped_column(Integer)
    method: Mapped[str] = mapped_column(String(32))
    model_version: Mapped[str | None] = mapped_column(String(128))
    job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED, index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    detail: Mapped[dict | None] = mapped_column(JSON)
    params: Mapped[dict | None] = mapped_column(JSON)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    queue: Mapped[str] = mapped_column(String(32), default="default")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    worker: Mapped[str | None] = mapped_column(String(128))
    photo_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Tle(Base):
    __tablename__ = "tles"
    __table_args__ = (UniqueConstraint("norad_id", "epoch", name="uq_tles_norad_epoch"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    norad_id: Mapped[int] = mapped_column(Integer, index=True)
    name: Mapped[str | None] = mapped_column(String(69))
    epoch: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    line1: Mapped[str] = mapped_column(String(69))
    line2: Mapped[str] = mapped_column(String(69))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32), index=True)
    architecture: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    metrics: Mapped[dict | None] = mapped_column(JSON)
    config: Mapped[dict | None] = mapped_column(JSON)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
