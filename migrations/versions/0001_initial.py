"""Initial schema: photos, footprints, jobs, tles, model_versions.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

from service.models import GeometryType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    op.create_table(
        "photos",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("photo_id", sa.String(64), nullable=False, unique=True),
        sa.Column("captured_at", UTCDateTime()),
        sa.Column("nadir_lat", sa.Float),
        sa.Column("nadir_lon", sa.Float),
        sa.Column("image_path", sa.Text),
        sa.Column("image_sha256", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("meta", sa.JSON),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_photos_photo_id", "photos", ["photo_id"])
    op.create_index("ix_photos_image_sha256", "photos", ["image_sha256"])

    op.create_table(
        "footprints",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "photo_id",
            sa.String(64),
            sa.ForeignKey("photos.photo_id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("geom", GeometryType("POLYGON"), nullable=False),
        sa.Column("confidence", sa.Float),
        sa.Column("inliers", sa.Integer),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("model_version", sa.String(128)),
        sa.Column("job_id", sa.String(32)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_footprints_photo_id", "footprints", ["photo_id"])
    if postgres:
        op.create_index("ix_footprints_geom", "footprints", ["geom"], postgresql_using="gist")

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False),
        sa.Column("detail", sa.JSON),
        sa.Column("params", sa.JSON),
        sa.Column("result", sa.JSON),
        sa.Column("error", sa.Text),
        sa.Column("queue", sa.String(32), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("worker", sa.String(128)),
        sa.Column("photo_id", sa.String(64)),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("heartbeat_at", UTCDateTime()),
    )
    op.create_index("ix_jobs_kind", "jobs", ["kind"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_photo_id", "jobs", ["photo_id"])

    op.create_table(
        "tles",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("norad_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(69)),
        sa.Column("epoch", UTCDateTime(), nullable=False),
        sa.Column("line1", sa.String(69), nullable=False),
        sa.Column("line2", sa.String(69), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("norad_id", "epoch", name="uq_tles_norad_epoch"),
    )
    op.create_index("ix_tles_norad_id", "tles", ["norad_id"])
    op.create_index("ix_tles_epoch", "tles", ["epoch"])

    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("architecture", sa.String(64)),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("metrics", sa.JSON),
        sa.Column("config", sa.JSON),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_model_versions_kind", "model_versions", ["kind"])
    op.create_index("ix_model_versions_sha256", "model_versions", ["sha256"])
    # At most one active version per kind, enforced by the database itself.
    op.create_index(
        "uq_model_versions_active_kind",
        "model_versions",
        ["kind"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
    )


def downgrade() -> None:
    for table in ("model_versions", "tles", "jobs", "footprints", "photos"):
        op.drop_table(table)
