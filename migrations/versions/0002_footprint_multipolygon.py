"""Footprints may be MultiPolygons: a photo across the antimeridian is split at +/-180.

A lon/lat POLYGON cannot hold a footprint that crosses 180 degrees without breaking spatial
queries (ST_Intersects would see a polygon spanning the whole world), so such footprints are
stored as two parts. The column becomes geometry(Geometry, 4326) restricted to the two types.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite stores WKT text: any geometry type already fits
    op.execute("ALTER TABLE footprints ALTER COLUMN geom TYPE geometry(Geometry, 4326)")
    op.execute(
        "ALTER TABLE footprints ADD CONSTRAINT ck_footprints_polygonal "
        "CHECK (GeometryType(geom) IN ('POLYGON', 'MULTIPOLYGON'))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE footprints DROP CONSTRAINT ck_footprints_polygonal")
    op.execute("DELETE FROM footprints WHERE GeometryType(geom) <> 'POLYGON'")
    op.execute("ALTER TABLE footprints ALTER COLUMN geom TYPE geometry(Polygon, 4326)")
