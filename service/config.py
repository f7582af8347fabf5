"""All configuration of astroloc, read from environment variables (prefix ``ASTROLOC_``).

One class, one place: every tunable number of the service lives here. Algorithms in geo/, index/,
model/ and starid/ take plain arguments; the CLI, the API and the workers read them from here.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from geo.checks import NADIR_ORBIT_MAX_KM as _NADIR_ORBIT_MAX_KM
from geo.refine_params import RefineParams

# The refinement defaults live once, in geo.refine.RefineParams; the ASTROLOC_REFINE_* fields below take them.
_REFINE_DEFAULTS = RefineParams()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASTROLOC_", env_file=".env", extra="ignore")

    # --- storage -----------------------------------------------------------------------------
    data_dir: Path = Field(Path("var"), description="Root of everything the service writes.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL. Unset: embedded SQLite file in data_dir. "
        "Production: postgresql+psycopg://user@host/db with PostGIS.",
    )
    model_store_dir: Path | None = Field(None, description="Model store; default data_dir/models.")

    # --- jobs ----------------------------------------------------------------------------------
    queue_mode: Literal["inline", "rq"] = "inline"
    redis_url: str = "redis://127.0.0.1:6379/0"
    inline_workers: int = Field(2, ge=1, description="Threads running jobs in inline mode.")
    job_max_attempts: int = Field(3, ge=1, description="Runs of a job before it is marked failed.")
    job_heartbeat_s: float = Field(5.0, gt=0, description="How often a running job says it lives.")
    job_stale_after_s: float = Field(
        30.0, gt=0, description="A started job silent this long is taken as abandoned."
    )
    job_timeout_s: int = Field(3600, gt=0, description="RQ hard time limit of one job run.")

    # --- API -----------------------------------------------------------------------------------
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated keys; empty: write endpoints are open."
    )
    max_upload_bytes: int = Field(50 * 1024 * 1024, gt=0)
    # Limits of issue 18 (docs/operations.md, "Limits"): every one answers a documented 4xx/503.
    # 60 MP holds the largest ISS cameras (Nikon Z9: 45.7 MP); an 11000 x 10000 PNG is refused.
    max_image_pixels: int = Field(
        60_000_000, gt=0, description="Larger images are refused with 413 (decompression bombs)."
    )
    decode_max_side_px: int = Field(
        1024, ge=256, le=16384, description="Uploads are decoded for retrieval at most this size (JPEG at "
        "a reduced DCT scale); the stored file keeps every pixel."
    )
    max_concurrent_decodes: int = Field(4, ge=1, description="Uploads decoded at once by one API process.")
    decode_memory_mb: int = Field(
        300, ge=16, description="Estimated memory of the uploads decoded at once (a 60 MP PNG takes ~240 MB, "
        "a JPEG decoded at reduced scale a few MB)."
    )
    decode_wait_s: float = Field(
        10.0, gt=0, description="An upload waits this long for a decode slot, then 503 with Retry-After."
    )
    request_body_idle_timeout_s: float = Field(
        15.0, gt=0, description="A request body that stops arriving for this long is answered 408."
    )
    request_body_timeout_s: float = Field(
        300.0, gt=0, description="A request body must arrive whole within this time, else 408."
    )
    max_queued_localize: int = Field(
        64, ge=1, description="Queued localization jobs; beyond, POST /localize answers 429 + Retry-After."
    )
    max_queued_train: int = Field(2, ge=1, description="Queued training jobs; beyond, POST /train answers 429.")
    max_queued_default: int = Field(64, ge=1, description="Queued selftest jobs; beyond, 429.")
    queue_retry_after_s: int = Field(30, ge=1, description="Retry-After (s) of a 429 for a full queue.")
    inline_train_workers: int = Field(
        1, ge=1, description="Embedded mode: threads for training jobs, apart from localization's."
    )
    train_max_iterations: int = Field(100_000, ge=1, description="POST /train: most iterations (paper: 30k).")
    train_max_batch: int = Field(256, ge=1, description="POST /train: most pairs / quadruplets per batch.")
    train_max_threads: int = Field(64, ge=1, description="POST /train: most CPU threads of one run.")
    public_reads: bool = Field(
        False, description="With api_keys set: let GET of photos, footprints, pictures and jobs go without a key."
    )

    # --- orbit ---------------------------------------------------------------------------------
    norad_id: int = 25544
    tle_max_age_days: float = Field(14.0, gt=0)
    # geo/ (issue 3): the search region is the ground that sees the ISS at least this high.
    visibility_min_elevation_deg: float = Field(
        0.0, ge=0, lt=90, description="Minimum ISS elevation (degrees) bounding the search region."
    )
    # geo/checks.py (issue 19): why 150 km (catalogue p90 7.3 km, TLE drift) is in its docstring.
    nadir_orbit_max_km: float = Field(
        _NADIR_ORBIT_MAX_KM, gt=0, description="A given nadir farther than this from the orbit's sub-point "
        "at the capture time is flagged, and both visibility regions are searched."
    )

    # --- retrieval model (model/: networks, descriptors, ONNX serving) -------------------------
    model_device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where torch retrieval models run; auto: CUDA when available."
    )
    describe_batch_size: int = Field(
        32, ge=1, description="Network inputs per forward pass (an image counts once per rotation)."
    )
    model_threads: int | None = Field(
        None, ge=1, description="Intra-op CPU threads for torch/onnxruntime; unset: library default."
    )

    # --- demo world (world/: Blue Marble tiles + simulated ISS photos, issue 6) ----------------
    world_dir: Path | None = Field(None, description="Built demo world; default data_dir/world.")
    world_min_zoom: int = Field(3, ge=0, le=12, description="Coarsest Blue Marble tile zoom.")
    world_max_zoom: int = Field(6, ge=0, le=12, description="Finest zoom (Blue Marble is ~7 km/px).")
    world_queries: int = Field(1500, ge=0, description="Simulated photos in the demo world.")
    world_seed: int = Field(0, description="Seed of the demo world's photos and split.")
    world_image_size: int = Field(512, ge=64, le=4096, description="Side of the square query photos, px.")
    world_workers: int = Field(1, ge=1, description="Processes rendering query photos.")

    # --- index (index/: sharded FAISS tile index, HTTP tile source; issue 7) -------------------
    index_dir: Path | None = Field(None, description="Tile index directory; default data_dir/index.")
    index_shard_zoom: int = Field(
        5, ge=0, le=12, description="Shard cells are Web-Mercator tiles of this zoom (5: 11.25 deg)."
    )
    index_factories: str = Field(
        "Flat;20000:IVF{nlist},SQ8",
        description="FAISS index_factory by shard size ('N:factory' from N vectors on). "
        "'SQ8;20000:IVF{nlist},SQ8' fits the world-wide database (881k tiles) in ~7.4 GB.",
    )
    index_nprobe: int = Field(32, ge=1, description="IVF lists scanned per shard when searching.")
    index_build_chunk_tiles: int = Field(256, ge=1, description="Tiles per describe call and checkpoint.")
    index_load_workers: int = Field(4, ge=1, description="Threads reading tile images during a build.")
    index_turns_deg: list[int] = Field(
        default_factory=list,
        description="Also index each tile turned by these degrees (0-90 exclusive, e.g. [45]: 8 "
        "rotations every 45 deg), the corners filled with the neighbours' ground; a photo turned "
        "between two quarter turns then meets a tile turned like it (docs/search.md). Multiplies "
        "the index's size and build time.",
    )
    index_verify_checksums: bool = Field(
        True, description="Check each shard's files against the manifest when first loaded."
    )
    tile_url_template: str | None = Field(
        None, description="HTTP tile source: XYZ ({z}/{x}/{y}) or WMTS ({TileMatrix}...) URL template; "
        "`astroloc index build` and `astroloc model centre` read it when given no --tiles-dir or --url-template."
    )
    tile_cache_dir: Path | None = Field(None, description="HTTP tile cache; default data_dir/tiles.")
    tile_http_timeout_s: float = Field(10.0, gt=0, description="Timeout of one tile request.")
    tile_http_retries: int = Field(3, ge=0, description="Retries of a tile request after 5xx/timeouts.")

    # --- localization (POST /localize + the refinement job, issue 9) --------------------------
    tiles_dir: Path | None = Field(
        None, description="XYZ directory of the database tiles (index builds, refinement); "
        "default world_dir/tiles (the demo world)."
    )
    demo_checkpoint: Path = Field(
        Path(__file__).resolve().parent.parent / "model" / "checkpoints" / "astroloc-lite-gem2s-demo.pt",
        description="Our demo retrieval model (trained by `astroloc train`, committed).",
    )
    demo_architecture: str = Field("astroloc-lite-gem2s", description="Architecture of demo_checkpoint.")
    # EarthMatch refinement (geo/refine.py); min inliers calibrated by `astroloc bench localize`.
    refine_features: Literal["sift", "orb"] = Field(_REFINE_DEFAULTS.features, description="Local features.")
    refine_iterations: int = Field(_REFINE_DEFAULTS.iterations, ge=1, le=10, description="EarthMatch iterations (paper: 4).")
    # The inlier floor under the calibrated acceptance (geo/acceptance.py, docs/refinement.md): the
    # logistic probability over inliers, refitted by `astroloc bench localize`, decides; 8 keeps
    # resection's camera fit determined and refuses the near-empty matches before it is asked.
    refine_min_inliers: int = Field(
        _REFINE_DEFAULTS.min_inliers, ge=4, description="Inliers to accept a candidate (docs/benchmarks.md, localization)."
    )
    refine_max_features: int = Field(_REFINE_DEFAULTS.max_features, ge=100, description="Keypoints per image.")
    refine_query_max_side: int = Field(_REFINE_DEFAULTS.query_max_side, ge=64, description="Photos are matched at this size (px).")
    refine_sift_contrast: float = Field(_REFINE_DEFAULTS.sift_contrast, gt=0.0, le=0.2,
                                        description="SIFT's contrast threshold (OpenCV's default: 0.04).")
    demo_photos: int = Field(5, ge=1, le=200, description="Held-out photos `astroloc demo` localizes.")
    localize_max_candidates: int = Field(
        10, ge=1, le=100, description="Retrieval candidates the refinement job tries at most."
    )
    # The obliquity prior (geo/prior.py, service/localize/ranking.py): weights fitted on the demo
    # world's validation split by `astroloc bench prior` for the demo model (sha256 af9aabce6f08,
    # docs/benchmarks.md: test R@1 in-region 29.7% -> 59.9%; the prior alone gives 57.5%: on this
    # world the tile under the ISS is a strong guess); another model or world needs its own fit;
    # 0 turns a term off.
    search_prior_weight: float = Field(
        0.5, ge=0, description="Weight of the log-prior of a tile's place (distance from the nadir) in the ranking."
    )
    search_prior_size_weight: float = Field(
        0.0, ge=0, description="Weight of the log-prior of a tile's width (footprint size vs distance)."
    )
    search_prior_pool: int = Field(
        100, ge=1, le=1000, description="Most similar tiles in the region re-ranked by similarity + prior."
    )
    # Lost in space (no time, no nadir; service/localize/worldwide.py): coarse to fine, then the
    # refinement job tries candidates until a clear winner or the budget is spent.
    lost_in_space_budget_s: float = Field(20.0, gt=0, description="Time budget per photo searched world-wide, s.")
    lost_in_space_max_candidates: int = Field(
        100, ge=1, le=1000, description="Candidates refined at most for a world-wide search."
    )
    # Chosen on the validation split for the demo model (sha256 f5dba6102c30; docs/search.md): 10, 20,
    # 30, 50, 100 coarse tiles gave world-wide R@100 45.2, 49.6, 53.9, 57.0, 59.6% (a flat search 58.3%).
    lost_in_space_coarse_k: int = Field(
        100, ge=1, le=1000, description="Coarse tiles whose surroundings the fine zooms are searched in."
    )

    # --- star identification ------------------------------------------------------------------
    starid_time_budget_s: float = Field(2.0, gt=0)
    starid_mag_limit: float = Field(7.0, description="Catalogue build: faintest Hipparcos magnitude (issue 17).")
    # starid/ (issues 5, 17): defaults of POST /star-id's optional fields and of the catalogue build.
    starid_alpha_eps_deg: float = Field(
        0.06, gt=0, le=1, description="Angular match tolerance; holds for 0-2 px of centroid noise at 14 deg / 1024 px."
    )
    starid_mag_tolerance: float = Field(1.8, gt=0, le=20, description="Magnitude match tolerance (0-0.6 mag noise).")
    starid_min_separation_deg: float = Field(
        0.03, ge=0, lt=5, description="Catalogue build: closer stars merge into one blob, as a detector sees them."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("index_turns_deg")
    @classmethod
    def _check_turns(cls, value: list[int]) -> list[int]:
        from index.shards import rotations_with_turns

        rotations_with_turns(value)  # ValueError (a settings error) for turns outside (0, 90) or repeated
        return value

    @property
    def index_rotations(self) -> tuple[int, ...]:
        """Degrees of each tile's descriptors in the index: the quarter turns, then the turns'."""
        from index.shards import rotations_with_turns

        return rotations_with_turns(self.index_turns_deg)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'astroloc.db').resolve()}"

    @property
    def resolved_model_store_dir(self) -> Path:
        return self.model_store_dir or self.data_dir / "models"

    @property
    def resolved_world_dir(self) -> Path:
        return self.world_dir or self.data_dir / "world"

    @property
    def resolved_tiles_dir(self) -> Path:
        return self.tiles_dir or self.resolved_world_dir / "tiles"

    @property
    def resolved_index_dir(self) -> Path:
        return self.index_dir or self.data_dir / "index"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
