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
    max_image_pixels: int = Field(
        120_000_000, gt=0, description="Larger images are refused (decompression bombs)."
    )

    # --- orbit ---------------------------------------------------------------------------------
    norad_id: int = 25544
    tle_max_age_days: float = Field(14.0, gt=0)

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

    # --- star identification ------------------------------------------------------------------
    starid_time_budget_s: float = Field(2.0, gt=0)
    starid_mag_limit: float = 6.0
    # starid/ (issue 5): defaults of POST /star-id's optional fields and of the catalogue build.
    starid_alpha_eps_deg: float = Field(
        0.0275, gt=0, le=1, description="Angular match tolerance; ~2 sigma of the centroid noise."
    )
    starid_mag_tolerance: float = Field(1.2, gt=0, le=20, description="Magnitude match tolerance.")
    starid_min_separation_deg: float = Field(
        0.1, ge=0, lt=5, description="Catalogue build: closer pairs are unresolvable doubles, removed."
    )

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'astroloc.db').resolve()}"

    @property
    def resolved_model_store_dir(self) -> Path:
        return self.model_store_dir or self.data_dir / "models"

    @property
    def is_embedded(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
