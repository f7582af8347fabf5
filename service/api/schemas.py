"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


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
    reference_footprint: str | None = Field(
        None,
        max_length=100_000,
        description="Catalogue footprint to compare with: GeoJSON Polygon or [[lon, lat] x 4] (JSON).",
    )

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
# Shapes and types only: the meaning (at least 3 stars, inside the image, 0 < fov < 180, ...) is
# checked once, by starid.identify_request, whose ValueErrors become 422 answers.


class StarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    x: float
    y: float
    mag: float | None = None


class StarIdIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "stars": [{"x": 512.3, "y": 100.8, "mag": 4.1}, {"x": 80.0, "y": 700.5, "mag": 5.2},
                          {"x": 900.2, "y": 433.0, "mag": 3.3}],
                "image_width": 1024, "image_height": 1024, "fov_deg": 14.0,
            }
        },
    )

    stars: list[StarIn] | None = Field(None, description="Centroids in pixels, origin top-left.")
    vectors: list[list[float]] | None = Field(
        None, description="Or unit vectors in the camera frame (x right, y down, z boresight)."
    )
    mags: list[float | None] | None = Field(None, description="Magnitudes of the vectors.")
    image_width: int | None = None
    image_height: int | None = None
    fov_deg: float | None = Field(None, description="Horizontal field of view, degrees.")
    alpha_eps_deg: float | None = Field(None, description="Match tolerance (default 0.06°).")
    mag_tolerance: float | None = Field(None, description="Magnitude tolerance (default 1.8).")


class StarIdImageIn(BaseModel):
    """The form fields that come with a frame (multipart field `image`) to POST /star-id."""

    model_config = ConfigDict(extra="forbid")

    fov_deg: float = Field(..., gt=0, lt=180, description="Horizontal field of view, degrees (up to 5% off is handled).")
    sigma_threshold: float | None = Field(None, ge=1, le=100, description="Detection threshold in noise sigmas (default 5).")
    psf_sigma_px: float | None = Field(None, ge=0.3, le=20, description="PSF sigma in pixels, the matched filter (default 1).")
    alpha_eps_deg: float | None = Field(None, gt=0, le=1, description="Match tolerance (default 0.06°).")
