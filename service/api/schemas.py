"""Request and response bodies of the HTTP API (pydantic)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from service.localize.contracts import SearchSummary
from service.models import JobStatus


class Message(BaseModel):
    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int] = Field(description="Where: body / query / path / form, then the field.")
    msg: str
    type: str | None = None


class TleRejection(BaseModel):
    line: int
    reason: str


class Invalid(BaseModel):
    """Every 422 answer: ``detail`` is a message, or one entry per invalid field; POST /tles adds
    the rejected element sets."""

    detail: str | list[FieldProblem]
    rejected: list[TleRejection] | None = None


# --- inputs shared by several routes ---------------------------------------------------------

# The calendar the orbit code works in: no TLE predates Sputnik 1, and sgp4/skyfield's tables stop.
EARLIEST_TIME = datetime(1957, 10, 4, tzinfo=timezone.utc)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=timezone.utc)
_EPOCH_SECONDS = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")


def parse_capture_time(value: object) -> datetime:
    """An ISO 8601 time with a zone, as UTC, between EARLIEST_TIME and LATEST_TIME. Bare epoch
    seconds (``1530595506``) are refused, not guessed: their zone and unit are ambiguous."""
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        if _EPOCH_SECONDS.fullmatch(value):
            raise ValueError("bare epoch seconds are not accepted: give ISO 8601 with a zone, "
                             "e.g. 2018-07-03T05:25:06Z")
        try:
            when = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:64]!r} is not an ISO 8601 time (e.g. 2016-04-09T12:00:00Z)") from None
    else:
        raise ValueError("a time is an ISO 8601 string with a zone (e.g. 2016-04-09T12:00:00Z)")
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError("the time needs a zone (e.g. 2016-04-09T12:00:00Z); not guessed")
    try:
        when = when.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("the time in UTC falls outside the calendar (years 1-9999)") from None
    if not EARLIEST_TIME <= when < LATEST_TIME:
        raise ValueError(f"the time must lie between {EARLIEST_TIME:%Y-%m-%d} and {LATEST_TIME:%Y-%m-%d} (UTC)")
    return when


CaptureTime = Annotated[datetime, BeforeValidator(parse_capture_time)]

# NORAD catalogue numbers (Alpha-5 reaches 339999); the bound keeps ids inside SQL integers.
NORAD_ID_MAX = 999_999_999
# GeoJSON (Multi)Polygons nest 5 deep; anything deeper is not a footprint (and not parsed).
MAX_FOOTPRINT_JSON_DEPTH = 8


def json_depth(text: str) -> int:
    """How deep ``[`` and ``{`` nest in a JSON text (strings skipped), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class JobOut(BaseModel):
    id: str
    kind: str
    status: JobStatus
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
    reasons: list[str] = Field(default_factory=list, description="Why the service is degraded (empty when ok).")
    version: str
    database: dict[str, Any]
    queue: dict[str, Any]
    model_store: dict[str, Any]


# --- localization --------------------------------------------------------------------------


class LocalizeForm(BaseModel):
    """Form fields of POST /localize (the image travels beside them as a file part)."""

    timestamp: CaptureTime | None = Field(
        None, description="Capture time, ISO 8601 with a zone, 1957-10-04 to 2100-01-01; epoch seconds are refused."
    )
    nadir_lat: float | None = Field(None, ge=-90, le=90)
    nadir_lon: float | None = Field(None, ge=-180, le=180)
    photo_id: str | None = Field(
        None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
    )
    top_k: int = Field(10, ge=1, le=100)
    refine: bool = True
    search: Literal["auto", "visibility", "worldwide"] = "auto"
    method: Literal["auto", "stars", "matching"] = Field(
        "auto", description="stars: located by the stars above the limb (night photos; needs the capture time); "
        "matching: retrieval and EarthMatch; auto: the stars for a night photo that shows enough of them, else matching.")
    focal_mm: float | None = Field(None, gt=0, le=2000, description="Lens focal length, mm (the star path's field "
                                   "of view); else EXIF; else the common ISS lenses are tried.")
    sensor_width_mm: float | None = Field(None, gt=0, le=100, description="Sensor width, mm (default 36: the "
                                          "ISS's full-frame bodies).")
    reference_footprint: str | None = Field(
        None,
        max_length=100_000,
        description="Catalogue footprint to compare with: GeoJSON Polygon or [[lon, lat] x 4] (JSON).",
    )

    @field_validator("reference_footprint")
    @classmethod
    def _shallow_json(cls, value: str | None) -> str | None:
        if value is not None and json_depth(value) > MAX_FOOTPRINT_JSON_DEPTH:
            raise ValueError(f"reference_footprint nests deeper than {MAX_FOOTPRINT_JSON_DEPTH} levels; "
                             "a GeoJSON Polygon or four corners is expected")
        return value

    @model_validator(mode="after")
    def _nadir_pair(self) -> LocalizeForm:
        if (self.nadir_lat is None) != (self.nadir_lon is None):
            raise ValueError("give both nadir_lat and nadir_lon, or neither")
        return self


class LocalizeAccepted(BaseModel):
    """POST /localize's answer: the job to follow, where it searched, what retrieval found."""

    job_id: str
    photo_id: str
    status_url: str
    duplicate: bool = Field(description="True: this photo_id was already submitted with this image; its job.")
    status: str | None = Field(None, description="The earlier job's status (duplicates only).")
    search: SearchSummary | None = Field(description="The search region, metadata checks, day or night; "
                                         "null for a duplicate.")
    candidates: list[dict] = Field(description="Retrieved tiles, best first: tile, zoom, rotation, score "
                                   "(similarity), log_prior (weighted prior added to rank it), footprint.")
    method: Literal["stars", "matching"] | None = Field(None, description="The path the job takes: stars (night photo, enough stars above the limb; matching follows if they do not suffice under auto) or matching.")
    star_path: dict | None = Field(None, description="Why the star path was or was not planned: reason, stars detected above the limb, the lens's source.")


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
