"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator


class Message(BaseModel):
    detail: str


class JobOut(BaseModel):
    id: str
    kind: str
    status: Literal["queued", "started", "finished", "failed"]
    progress: float
    detail: dict | None = None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict | None
    error: str | None


class JobCreated(BaseModel):
    job_id: str
    status_url: str


class SelftestIn(BaseModel):
    seconds: float = Field(1.0, ge=0, le=600)
    steps: int = Field(5, ge=1, le=1000)


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: dict[str, Any]
    queue: dict[str, Any]
    model_store: dict[str, Any]


# --- localization --------------------------------------------------------------------------


class LocalizeForm(BaseModel):
    """Form fields of POST /localize (the image travels beside them as a file part)."""

    timestamp: datetime | None = Field(None, description="Capture time, ISO 8601 with a zone.")
    nadir_lat: float | None = Field(None, ge=-90, le=90)
    nadir_lon: float | None = Field(None, ge=-180, le=180)
    photo_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
    )
    top_k: int = Field(10, ge=1, le=100)
    refine: bool = True
    search: Literal["auto", "visibility", "worldwide"] = "auto"

    @field_validator("timestamp")
    @classmethod
    def _zone_required(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("timestamp needs a time zone (e.g. 2016-04-09T12:00:00Z); not guessed")
        return value

    @model_validator(mode="after")
    def _nadir_pair(self) -> LocalizeForm:
        if (self.nadir_lat is None) != (self.nadir_lon is None):
            raise ValueError("give both nadir_lat and nadir_lon, or neither")
        return self


# --- star identification -------------------------------------------------------------------


class StarIn(BaseModel):
    x: float
    y: float
    mag: float | None = None


class StarIdIn(BaseModel):
    stars: list[StarIn] | None = Field(None, description="Centroids in pixels, origin top-left.")
    vectors: list[list[float]] | None = Field(
        None, description="Or unit vectors in the camera frame (x right, y down, z boresight)."
    )
    image_width: int | None = Field(None, gt=0, le=100_000)
    image_height: int | None = Field(None, gt=0, le=100_000)
    fov_deg: float | None = Field(None, description="Horizontal field of view.")
    alpha_eps_deg: float = Field(0.0275, gt=0, le=5)
    mag_tolerance: float = Field(1.2, ge=0, le=10)

    @model_validator(mode="after")
    def _check(self) -> StarIdIn:
        if (self.stars is None) == (self.vectors is None):
            raise ValueError("give exactly one of 'stars' (pixels) or 'vectors'")
        if self.stars is not None:
            if self.image_width is None or self.image_height is None or self.fov_deg is None:
                raise ValueError("'stars' needs image_width, image_height and fov_deg")
            if not 0 < self.fov_deg < 180:
                raise ValueError("fov_deg must be in (0, 180)")
            if len(self.stars) < 3:
                raise ValueError(f"at least 3 stars are needed, got {len(self.stars)}")
            for i, star in enumerate(self.stars):
                values = [star.x, star.y] + ([star.mag] if star.mag is not None else [])
                if not all(math.isfinite(v) for v in values):
                    raise ValueError(f"star {i} has a non-finite coordinate or magnitude")
                if not (0 <= star.x <= self.image_width and 0 <= star.y <= self.image_height):
                    raise ValueError(
                        f"star {i} at ({star.x}, {star.y}) lies outside the "
                        f"{self.image_width}x{self.image_height} image"
                    )
        else:
            if len(self.vectors) < 3:
                raise ValueError(f"at least 3 star vectors are needed, got {len(self.vectors)}")
            for i, vector in enumerate(self.vectors):
                if len(vector) != 3 or not all(math.isfinite(v) for v in vector):
                    raise ValueError(f"vector {i} must be 3 finite numbers")
                if math.hypot(*vector) < 1e-9:
                    raise ValueError(f"vector {i} has zero length")
        return self
