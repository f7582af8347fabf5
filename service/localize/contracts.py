"""The typed contract between POST /localize, the queue and the refinement job (pydantic).

The job's params (:class:`LocalizeJobParams`) are stored as JSON in ``jobs.params``; its answer
(:class:`LocalizeResult`) in ``jobs.result``. The result keeps only the fields a branch sets
(``model_dump(exclude_unset=True)``): a photo not localized has a reason, no footprint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class Candidate(BaseModel):
    """A retrieved tile: where retrieval thinks the photo is, and how it is turned."""

    tile: str  # "z/x/y"
    zoom: int
    rotation: int  # degrees: the photo matches the tile turned by this
    score: float  # descriptor similarity, higher is closer
    log_prior: float | None = None  # the weighted obliquity prior added to the score to rank it

    @classmethod
    def of_hit(cls, hit, log_prior: float | None = None) -> Candidate:  # noqa: ANN001 (an index.search hit)
        return cls(tile=str(hit.tile), zoom=hit.zoom, rotation=hit.rotation, score=hit.score, log_prior=log_prior)


class SearchCheck(BaseModel):
    """One check of the photo's metadata (geo.checks): ``ok`` false flags it."""

    name: Literal["capture_time", "tle_age", "nadir_vs_orbit", "footprint_horizon"]
    ok: bool
    detail: str = Field(description="What was measured, with its threshold.")


class SearchSummary(BaseModel):
    """Where POST /localize searched, and what it found out on the way (the answer's ``search``)."""

    mode: Literal["visibility", "worldwide"]
    reason: str = Field(description="Why this region: the nadir, the orbit, both (they disagree), or none.")
    region: dict | None = Field(description="GeoJSON geometry searched; null: the whole world.")
    iss_position: dict | None = Field(description="The ISS sub-point the region is centred on (lat, lon, alt_km, source).")
    area_km2: float
    checks: list[SearchCheck] = Field(
        description="Metadata checks that applied: capture time within the ISS's life and not in the future, TLE "
        "age within the trust window, nadir vs the orbit at the capture time, reference footprint within the horizon."
    )
    sun_elevation_deg: float | None = Field(
        description="Sun elevation at the ISS sub-point at the capture time (geometric, degrees); null without "
        "a valid capture time or a position."
    )
    daylight: bool | None = Field(
        description="Sun above the horizon at the sub-point (elevation > -0.833 deg, sunrise convention); "
        "false: a night photo (the star path); null: unknown."
    )
    ranking: str = Field(description="How candidates were ranked: similarity, similarity+prior, or coarse-to-fine.")
    retrieval_reason: str | None = None
    shards_searched: int
    retrieval_s: float


# --- the star path (issue 20): night photos localized by their stars ---------------------------------


class StarPathParams(BaseModel):
    """What the job's star path needs (planned by POST /localize, service.localize.stars)."""

    capture_time: datetime
    fov_deg: list[float]  # horizontal fields of view to try, first first
    fov_source: Literal["form", "exif", "common-lenses"]
    time_sigma_s: float = 0.29  # a time read from EXIF: one-second resolution
    fall_back_to_matching: bool = False  # method auto: the candidates are refined if the stars do not suffice


class Attitude(BaseModel):
    """The camera's orientation from its stars: the rotation camera -> ICRS (camera x right, y down,
    z the boresight) and the boresight's RA/Dec with the roll (position angle of the image's up)."""

    frame: Literal["ICRS"] = "ICRS"
    quaternion_wxyz: list[float]
    ra_deg: float
    dec_deg: float
    roll_deg: float


class StarUsed(BaseModel):
    """A star that fixed the attitude: its centroid (px, origin top-left) and Hipparcos number."""

    x: float
    y: float
    hip: int
    flux: float


class StarPathCheck(BaseModel):
    """One check of the star solution against the photo: ``ok`` false refuses the footprint."""

    name: Literal["named_stars", "stars_above_limb", "sky_where_predicted", "ground_where_predicted"]
    ok: bool
    detail: str


class StarPathSummary(BaseModel):
    """What the star path saw and concluded (the answer's ``star_path``)."""

    localized: bool
    reason: str | None = None
    detected_above_limb: int
    sky_fraction: float
    fov_deg: float | None = None
    fov_source: str | None = None
    checks: list[StarPathCheck] = Field(default_factory=list)
    corner_sigma_km: list[float | None] | None = None  # LL, UL, UR, LR (1 sigma); null: a corner in the sky
    runtime_s: float = 0.0


class LocalizeJobParams(BaseModel):
    """What the refinement job of one photo needs (written by service.localize.submit)."""

    photo_id: str
    image_path: str  # the stored photo, relative to the data dir (service.photos.stored_photo_path)
    candidates: list[Candidate]  # best first
    refine: bool = True
    model_version: str | None = None  # identity of the retrieval model (footprints record it)
    retrieval_s: float | None = None  # spent in the API before the job was queued
    reference: dict | None = None  # a catalogue footprint (GeoJSON), to report the IoU with
    stars: StarPathParams | None = None  # the star path first (night photos); None: matching only
    budget_s: float | None = None  # refinement time budget (lost in space); None: no limit


class RetrievalSummary(BaseModel):
    candidates: int
    best_score: float | None
    seconds: float | None


class TriedCandidate(BaseModel):
    """One candidate as refinement saw it (also the job's progress detail)."""

    tile: str
    rotation: int
    inliers: int
    accepted: bool
    reason: str | None = Field(description="Why it was refused; null when accepted.")
    inliers_per_iteration: list[int] = Field(default_factory=list, description="EarthMatch's passes, first to last.")
    method: str | None = Field(None, description="How the first homography was found: sift, asift (affine "
                               "simulation for oblique views); +zoom: refined on finer tiles.")
    first_match: str | None = Field(None, description="What the first homography was matched against: tile (the "
                                    "candidate tile), surrounding (its 3x3 neighbourhood), tile+asift (the photo's "
                                    "affine simulations against the tile).")
    model: str | None = Field(None, description="What gave the corners: camera (resected) or homography.")
    confidence: float | None = Field(None, description="P(right), from the calibrated acceptance (docs/refinement.md).")
    runtime_s: float | None = None

    @classmethod
    def of_match(cls, tile: str, match) -> TriedCandidate:  # noqa: ANN001 (a geo.refine.Match)
        return cls(tile=tile, rotation=match.rotation, inliers=match.inliers, accepted=match.accepted,
                   reason=match.reason, inliers_per_iteration=match.inliers_per_iteration, method=match.method,
                   first_match=match.first_match, model=match.model, confidence=match.confidence, runtime_s=round(match.runtime_s, 3))


class RankedCandidate(Candidate):
    rank: int  # 1-based, in retrieval order


class LatLon(BaseModel):
    lat: float
    lon: float


class LocalizeResult(BaseModel):
    """The answer of a refinement job (GET /jobs/{id} ``result``)."""

    localized: bool
    refined: bool
    reason: str | None = None
    candidates: list[Candidate] | None = None  # refine=false: what retrieval found
    footprint: dict | None = None  # GeoJSON geometry
    footprint_id: int | None = None
    center: LatLon | None = None
    area_km2: float | None = None
    confidence: float | None = Field(None, description="P(the footprint is right), calibrated (docs/refinement.md).")
    corner_uncertainty_km: list[float | None] | None = Field(
        None, description="Per corner (top-left, top-right, bottom-right, bottom-left of the photo): the distance "
        "within which the true corner lies for 90% of answers (calibrated by `astroloc bench localize`).")
    inliers: int | None = None
    candidate: RankedCandidate | None = None
    rotation: int | None = None
    homography: list | None = None
    method: Literal["stars", "matching"] | None = None  # the path that localized the photo
    footprint_method: str | None = None  # how the footprint was made: stars, earthmatch-...
    model_version: str | None = None
    tried: list[TriedCandidate] | None = None
    retrieval: RetrievalSummary
    runtime_s: float | None = None
    reference_iou: float | None = None
    attitude: Attitude | None = None  # the star path: the camera's orientation from its stars
    stars_used: list[StarUsed] | None = None  # the star path: the named stars that fixed it
    star_path: StarPathSummary | None = None  # what the star path saw (also when it gave way to matching)

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)
