"""Storage: Alembic migrations and spatial queries on real PostGIS, and the SQLite fallback."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from shapely.geometry import Polygon, box
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from service import crud
from service.db import current_revision, get_engine, session_scope, upgrade_database
from service.models import ModelVersion, Photo

GULF = Polygon([(-91.0, -1.0), (-90.0, -1.0), (-90.0, 0.0), (-91.0, 0.0)])  # near Galapagos
ALPS = box(6.0, 45.0, 8.0, 46.5)


@pytest.fixture(params=["postgis", "sqlite"])
def db_url(request, tmp_path):
    if request.param == "postgis":
        return request.getfixturevalue("postgis_url")
    url = f"sqlite:///{tmp_path / 'embedded.db'}"
    upgrade_database(url)
    return url


def test_migrations_create_schema_and_are_idempotent(db_url):
    upgrade_database(db_url)  # a second run changes nothing
    assert current_revision(db_url) == "0002"
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert {"photos", "footprints", "jobs", "tles", "model_versions"} <= tables


def test_postgis_column_is_geometry_with_gist_index(postgis_url):
    with get_engine(postgis_url).connect() as connection:
        column_type = connection.execute(
            text("SELECT postgis_typmod_type(atttypmod) FROM pg_attribute "
                 "WHERE attrelid = 'footprints'::regclass AND attname = 'geom'")
        ).scalar_one()
        index = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_footprints_geom'")
        ).scalar_one()
    assert column_type == "Geometry"  # Polygon or MultiPolygon (migration 0002)
    assert "gist" in index.lower()


def test_footprint_across_the_antimeridian_is_stored_in_two_parts(db_url):
    from shapely.geometry import MultiPolygon, Point

    across = MultiPolygon([box(178.0, -18.0, 180.0, -16.0), box(-180.0, -18.0, -178.0, -16.0)])
    photo_id = f"ISS064-E-{db_url[-6:]}9"
    with session_scope(db_url) as session:
        _add_photo(session, photo_id)
        crud.add_footprint(session, photo_id, across, method="test")
        session.commit()
    with session_scope(db_url) as session:
        stored = crud.latest_footprint(session, photo_id)
        assert stored.geom.geom_type == "MultiPolygon"
        assert stored.geom.equals(across)
        east = crud.footprints_intersecting(session, Point(-179.0, -17.0))
        west = crud.footprints_intersecting(session, Point(179.0, -17.0))
        assert photo_id in {f.photo_id for f in east} and photo_id in {f.photo_id for f in west}


def test_a_point_or_line_is_not_a_footprint(postgis_url):
    from shapely.geometry import LineString

    with session_scope(postgis_url) as session:
        _add_photo(session, "ISS064-E-LINE1")
        session.commit()
        with pytest.raises(ValueError, match="Polygon"):
            crud.add_footprint(session, "ISS064-E-LINE1", LineString([(0, 0), (1, 1)]), method="test")
        session.rollback()
    # The database refuses it too (CHECK constraint of migration 0002), whatever the client.
    with get_engine(postgis_url).connect() as connection, pytest.raises(IntegrityError, match="ck_footprints_polygonal"):
        connection.execute(text(
            "INSERT INTO footprints (photo_id, geom, method, created_at) VALUES "
            "('ISS064-E-LINE1', ST_GeomFromText('LINESTRING(0 0, 1 1)', 4326), 'test', now())"
        ))


def _add_photo(session, photo_id: str) -> None:
    session.add(Photo(photo_id=photo_id, status="localized",
                      captured_at=datetime(2016, 4, 9, 12, tzinfo=UTC)))
    session.flush()


def test_footprint_roundtrip_and_spatial_query(db_url):
    suffix = db_url[-6:]
    with session_scope(db_url) as session:
        _add_photo(session, f"ISS047-E-{suffix}1")
        _add_photo(session, f"ISS047-E-{suffix}2")
        crud.add_footprint(session, f"ISS047-E-{suffix}1", GULF, method="test", inliers=42)
        crud.add_footprint(session, f"ISS047-E-{suffix}2", ALPS, method="test")
    with session_scope(db_url) as session:
        stored = crud.latest_footprint(session, f"ISS047-E-{suffix}1")
        assert stored.geom.equals(GULF) and stored.inliers == 42
        hits = crud.footprints_intersecting(session, box(-90.5, -0.5, -89.0, 2.0))
        ids = {fp.photo_id for fp in hits}
        assert f"ISS047-E-{suffix}1" in ids and f"ISS047-E-{suffix}2" not in ids
        point_hits = crud.footprints_intersecting(session, box(7.0, 46.0, 7.0001, 46.0001))
        assert f"ISS047-E-{suffix}2" in {fp.photo_id for fp in point_hits}


def test_invalid_footprint_is_refused(db_url):
    bowtie = Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with session_scope(db_url) as session:
        _add_photo(session, "ISS001-E-BOWTIE")
        with pytest.raises(ValueError, match="valid polygon"):
            crud.add_footprint(session, "ISS001-E-BOWTIE", bowtie, method="test")


def test_tle_import_is_idempotent(db_url):
    epoch = datetime(2016, 3, 3, 20, 26, 57, tzinfo=UTC)
    row = (25544, "ISS (ZARYA)", epoch, "1 " + "x" * 67, "2 " + "y" * 67)
    with session_scope(db_url) as session:
        assert crud.import_tles(session, [row]) == (1, 0)
    with session_scope(db_url) as session:
        assert crud.import_tles(session, [row]) == (0, 1)
        assert [t.epoch for t in crud.list_tles(session, 25544)] == [epoch]


def test_one_active_model_version_per_kind(db_url):
    with session_scope(db_url) as session:
        versions = [
            ModelVersion(name=f"m{i}", kind="retrieval-test", path=f"/x/{i}", sha256=f"{i:064d}",
                         size_bytes=1, active=False)
            for i in range(2)
        ]
        session.add_all(versions)
        session.flush()
        crud.activate_model_version(session, versions[0].id)
        crud.activate_model_version(session, versions[1].id)
        assert crud.active_model_version(session, "retrieval-test").name == "m1"
    # The database itself refuses a second active row of the same kind.
    with pytest.raises(IntegrityError), session_scope(db_url) as session:
        for version in crud.list_model_versions(session, "retrieval-test"):
            version.active = True
        session.flush()


def test_a_photo_row_is_stored_through_crud_once(db_url):
    from sqlalchemy.exc import IntegrityError

    with session_scope(db_url) as session:
        photo = crud.add_photo(session, "ISS-CRUD-1", image_path="/p.jpg", image_sha256="ab" * 32,
                               nadir=(12.5, -40.25), meta={"format": "JPEG"})
        session.commit()
        assert (photo.nadir_lat, photo.nadir_lon, photo.status) == (12.5, -40.25, "queued")
    with pytest.raises(IntegrityError), session_scope(db_url) as session:
        crud.add_photo(session, "ISS-CRUD-1", image_path="/q.jpg", image_sha256="cd" * 32)
