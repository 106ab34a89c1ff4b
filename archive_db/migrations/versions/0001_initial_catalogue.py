"""initial catalogue

Revision ID: 0001
Revises:
Create Date: 2026-11-21 04:23:35.241529
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import archive_db.types

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.CheckConstraint("kind IN ('software', 'model', 'person')", name=op.f("ck_agents_kind")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
        sa.UniqueConstraint("kind", "name", "version", name=op.f("uq_agents_kind_name_version")),
    )
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_collections_name")),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("task", sa.String(length=20), nullable=False),
        sa.Column("architecture", sa.String(length=100), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("weights_uri", sa.String(length=1024), nullable=False),
        sa.Column("weights_sha256", sa.String(length=64), nullable=False),
        sa.Column(
            "metrics",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('candidate', 'production', 'retired')", name=op.f("ck_model_versions_status")
        ),
        sa.CheckConstraint("task IN ('restore', 'style')", name=op.f("ck_model_versions_task")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_model_versions_name_version")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("source_uri", sa.String(length=1024), nullable=False),
        sa.Column("source_key", sa.String(length=1024), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("quarantine_reason", sa.Text(), nullable=True),
        sa.Column("format", sa.String(length=20), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("mode", sa.String(length=20), nullable=True),
        sa.Column("bit_depth", sa.Integer(), nullable=True),
        sa.Column("dpi_x", sa.Double(), nullable=True),
        sa.Column("dpi_y", sa.Double(), nullable=True),
        sa.Column("icc_description", sa.Text(), nullable=True),
        sa.Column("orientation", sa.Integer(), nullable=True),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("capture_date", sa.String(length=32), nullable=True),
        sa.Column("make", sa.String(length=200), nullable=True),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column(
            "exif",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "technical",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("thumbnail_key", sa.String(length=1024), nullable=True),
        sa.Column("created_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ingested', 'quarantined')", name=op.f("ck_items_status")),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_items_collection_id_collections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.UniqueConstraint("collection_id", "sha256", name=op.f("uq_items_collection_id_sha256")),
        sa.UniqueConstraint("collection_id", "source_key", name=op.f("uq_items_collection_id_source_key")),
    )
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.create_index("ix_items_collection_status", ["collection_id", "status"], unique=False)
        batch_op.create_index("ix_items_sha256", ["sha256"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("flow", sa.String(length=100), nullable=False),
        sa.Column("flow_run_id", sa.String(length=64), nullable=True),
        sa.Column("collection_id", sa.Integer(), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("code_version", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "timings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("started_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", archive_db.types.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'partial', 'failed')", name=op.f("ck_runs_status")
        ),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_runs_collection_id_collections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_collection_id"), ["collection_id"], unique=False)

    op.create_table(
        "derivatives",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("recipe_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "recipe",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("model_version_id", sa.Integer(), nullable=True),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("storage_uri", sa.String(length=1024), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("created_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_derivatives_version")),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_derivatives_item_id_items")),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_derivatives_model_version_id_model_versions"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"], ["derivatives.id"], name=op.f("fk_derivatives_parent_id_derivatives")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_derivatives_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derivatives")),
        sa.UniqueConstraint(
            "item_id", "kind", "recipe_hash", name=op.f("uq_derivatives_item_id_kind_recipe_hash")
        ),
        sa.UniqueConstraint("item_id", "kind", "version", name=op.f("uq_derivatives_item_id_kind_version")),
    )
    with op.batch_alter_table("derivatives", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_derivatives_model_version_id"), ["model_version_id"], unique=False
        )
        batch_op.create_index(
            "uq_derivatives_current",
            ["item_id", "kind"],
            unique=True,
            sqlite_where=sa.text("is_current"),
            postgresql_where=sa.text("is_current"),
        )

    op.create_table(
        "duplicates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("collection_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=False),
        sa.Column("source_key", sa.String(length=1024), nullable=False),
        sa.Column("etag", sa.String(length=200), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"], ["collections.id"], name=op.f("fk_duplicates_collection_id_collections")
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_duplicates_item_id_items")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_duplicates")),
        sa.UniqueConstraint(
            "collection_id", "source_key", name=op.f("uq_duplicates_collection_id_source_key")
        ),
    )
    with op.batch_alter_table("duplicates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_duplicates_item_id"), ["item_id"], unique=False)

    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=50), nullable=False),
        sa.Column("occurred_at", archive_db.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("agent_id", sa.Integer(), nullable=False),
        sa.Column("item_id", sa.Integer(), nullable=True),
        sa.Column("derivative_id", sa.Integer(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.CheckConstraint("outcome IN ('success', 'failure', 'warning')", name=op.f("ck_events_outcome")),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name=op.f("fk_events_agent_id_agents")),
        sa.ForeignKeyConstraint(
            ["derivative_id"], ["derivatives.id"], name=op.f("fk_events_derivative_id_derivatives")
        ),
        sa.ForeignKeyConstraint(["item_id"], ["items.id"], name=op.f("fk_events_item_id_items")),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_events_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_derivative_id"), ["derivative_id"], unique=False)
        batch_op.create_index("ix_events_item_time", ["item_id", "occurred_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_run_id"), ["run_id"], unique=False)
        batch_op.create_index("ix_events_type_time", ["type", "occurred_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_type_time")
        batch_op.drop_index(batch_op.f("ix_events_run_id"))
        batch_op.drop_index("ix_events_item_time")
        batch_op.drop_index(batch_op.f("ix_events_derivative_id"))

    op.drop_table("events")
    with op.batch_alter_table("duplicates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_duplicates_item_id"))

    op.drop_table("duplicates")
    with op.batch_alter_table("derivatives", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_derivatives_current",
            sqlite_where=sa.text("is_current"),
            postgresql_where=sa.text("is_current"),
        )
        batch_op.drop_index(batch_op.f("ix_derivatives_model_version_id"))

    op.drop_table("derivatives")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_collection_id"))

    op.drop_table("runs")
    with op.batch_alter_table("items", schema=None) as batch_op:
        batch_op.drop_index("ix_items_sha256")
        batch_op.drop_index("ix_items_collection_status")

    op.drop_table("items")
    op.drop_table("model_versions")
    op.drop_table("collections")
    op.drop_table("agents")
