"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout (real NASA data); tests using it skip when absent."""
    if not (SHARED_DATA / "eol_footprints.csv").exists():
        pytest.skip("../shared/data is absent (real-data tests run only beside the shared folder)")
    return SHARED_DATA


# --- real infrastructure ------------------------------------------------------------------------
import os  # noqa: E402
import uuid  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "ASTROLOC_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("ASTROLOC_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def _unavailable(what: str, exc: Exception) -> None:
    """Real-server tests fail in CI when the server is missing; elsewhere they skip with the reason."""
    message = f"{what} is not reachable ({exc}); run `make services` (scripts/dev_services.sh)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def postgis_url() -> str:
    """A fresh PostGIS database for each test, migrated to head with Alembic (tests never see each
    other's photos: a photo localized by one test would be a duplicate in the next)."""
    from sqlalchemy import create_engine, text

    from service.db import upgrade_database

    name = f"astroloc_test_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        _unavailable("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade_database(url)
    yield url
    from service.db import get_engine

    get_engine(url).dispose()
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


@pytest.fixture
def redis_url() -> str:
    """The test Redis database, emptied before each test."""
    from redis import Redis

    try:
        client = Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=3)
        client.flushdb()
    except Exception as exc:
        _unavailable("Redis", exc)
    return REDIS_TEST_URL


@pytest.fixture
def sqlite_settings(tmp_path):
    """Embedded-default settings in a temporary data dir (SQLite + inline jobs)."""
    from service.config import Settings
    from service.db import upgrade_database

    settings = Settings(data_dir=tmp_path / "var", queue_mode="inline", api_keys=[])
    upgrade_database(settings.resolved_database_url)
    return settings


@pytest.fixture
def api_client(sqlite_settings):
    """A TestClient over the embedded app."""
    from fastapi.testclient import TestClient

    from service.api.main import create_app

    with TestClient(create_app(sqlite_settings)) as client:
        yield client


@pytest.fixture(scope="session")
def localize_world(tmp_path_factory):
    """A small demo world (zooms 4-5, 56 photos), its tile index by the demo model, built once.

    Returns ``make_settings(**overrides)``: Settings over that world whose database has the demo
    model active and the ISS TLEs imported (what `astroloc demo` prepares), ready to localize.
    """
    from service.config import Settings
    from service.db import upgrade_database
    from service.demo_stack import ensure_demo_model, ensure_index, ensure_tles, ensure_world

    root = tmp_path_factory.mktemp("localize-world")
    shared = dict(
        world_dir=root / "world", index_dir=root / "index", model_store_dir=root / "models",
        world_min_zoom=4, world_max_zoom=5, world_queries=56, world_seed=3, world_workers=1,
    )
    builder = Settings(data_dir=root / "builder", queue_mode="inline", api_keys=[], **shared)
    upgrade_database(builder.resolved_database_url)
    ensure_world(builder)
    ensure_index(builder, ensure_demo_model(builder))

    def make_settings(**overrides) -> Settings:
        values = dict(shared, queue_mode="inline", api_keys=[]) | overrides
        settings = Settings(**values)
        upgrade_database(settings.resolved_database_url)
        ensure_tles(settings)
        ensure_demo_model(settings)
        return settings

    return make_settings
