"""The typed contract between POST /localize, the queue and the refinement job (pydantic).

The job's params (:class:`LocalizeJobParams`) are stored as JSON in ``jobs.params``; its answer
(:class:`LocalizeResult`) in ``jobs.result``. The result keeps only the fields a branch sets
(``model_dump(exclude_unset=True)``): a photo not localized has a reason, no footprint.
"""

from __future__ import annotations

from pydantic import BaseModel


class Candidate(BaseModel):
    """A retrieved tile: where retrieval thinks the photo is, and how it is turned."""

    tile: str  # "z/x/y"
    zoom: int
    rotation: int  # degrees: the photo matches the tile turned by this
    score: float  # descriptor similarity, higher is closer

    @classmethod
    def of_hit(cls, hit) -> Candidate:  # noqa: ANN001 (an index.search hit)
        return cls(tile=str(hit.tile), zoom=hit.zoom, rotation=hit.rotation, score=hit.score)


class LocalizeJobParams(BaseModel):
    """What the refinement job of one photo needs (written by service.localize.submit)."""

    photo_id: str
    image_path: str
    candidates: list[Candidate]  # best first
    refine: bool = True
    model_version: str | None = None  # identity of the retrieval model (footprints record it)
    retrieval_s: float | None = None  # spent in the API before the job was queued
    reference: dict | None = None  # a catalogue footprint (GeoJSON), to report the IoU with


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
    reason: str | None


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
    confidence: float | None = None
    inliers: int | None = None
    candidate: RankedCandidate | None = None
    rotation: int | None = None
    homography: list | None = None
    method: str | None = None
    model_version: str | None = None
    tried: list[TriedCandidate] | None = None
    retrieval: RetrievalSummary
    runtime_s: float | None = None
    reference_iou: float | None = None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_unset=True)
