"""SQLAlchemy 2.0 typed models of the catalogue (the provenance ledger)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from archive_db.types import JsonType, UTCDateTime, utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ITEM_STATUSES = ("ingested", "quarantined")
EVENT_OUTCOMES = ("success", "failure", "warning")
# The event types the catalogue records (PREMIS's vocabulary where it has a word for the action).
INGESTION, DIGEST, VALIDATION, EXTRACTION = (
    "ingestion",
    "message digest calculation",
    "validation",
    "metadata extraction",
)
QUARANTINE, FIXITY, DAMAGE_MASK = "quarantine", "fixity check", "damage mask"
RESTORATION, STYLE_TRANSFER, REPROCESSING = "restoration", "style transfer", "reprocessing"
UPSCALING = "enlargement"
PROMOTION, ROLLBACK, REVIEW, METADATA_MODIFICATION = (
    "promotion",
    "rollback",
    "review",
    "metadata modification",
)
EVENT_TYPES = (
    INGESTION,
    DIGEST,
    VALIDATION,
    EXTRACTION,
    QUARANTINE,
    FIXITY,
    DAMAGE_MASK,
    RESTORATION,
    STYLE_TRANSFER,
    UPSCALING,
    REPROCESSING,
    PROMOTION,
    ROLLBACK,
    REVIEW,
    METADATA_MODIFICATION,
)
MOVES = (PROMOTION, ROLLBACK)  # a change of which version is current; detail names the version replaced
MODEL_STATUSES = ("candidate", "production", "retired")
MAX_ID = (
    2**31 - 1
)  # ids are 32-bit on PostgreSQL: a larger one names nothing (and must not reach the database)
RUN_STATUSES = ("running", "completed", "partial", "failed", "abandoned")
REVIEW_STATES = ("approved", "rejected")
# Descriptive fields a manifest or a curator may set, in display order.
DESCRIPTIVE_FIELDS = ("title", "description", "date_text", "creator", "place", "subjects", "rights")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JsonType, datetime: UTCDateTime}


class Collection(Base):
    __tablename__ = "collections"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    items: Mapped[list[Item]] = relationship(back_populates="collection")


class Item(Base):
    """One row per master file, exactly as scanned."""

    __tablename__ = "items"
    __table_args__ = (
        UniqueConstraint("collection_id", "source_key"),
        UniqueConstraint("collection_id", "sha256"),
        Index("ix_items_sha256", "sha256"),
        Index("ix_items_collection_status", "collection_id", "status"),
        # The facets' grouped scan (collection, status, decade, model, styled) reads only these
        # covering indexes: the whole catalogue or a collection, matching ids (full text), dates.
        Index("ix_items_facets", "collection_id", "status", "date_from", "restored_model_id", "styled"),
        Index(
            "ix_items_id_facets", "id", "collection_id", "status", "date_from", "restored_model_id", "styled"
        ),
        Index(
            "ix_items_dates", "date_from", "date_to", "collection_id", "status", "restored_model_id", "styled"
        ),
        CheckConstraint(f"status IN {ITEM_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"))
    source_uri: Mapped[str] = mapped_column(String(1024))
    source_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(20))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    mode: Mapped[str | None] = mapped_column(String(20))
    bit_depth: Mapped[int | None] = mapped_column(Integer)
    dpi_x: Mapped[float | None]
    dpi_y: Mapped[float | None]
    icc_description: Mapped[str | None] = mapped_column(Text)
    orientation: Mapped[int | None] = mapped_column(Integer)
    page_count: Mapped[int | None] = mapped_column(Integer)
    capture_date: Mapped[str | None] = mapped_column(String(32))
    make: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    exif: Mapped[dict[str, Any] | None]
    technical: Mapped[dict[str, Any] | None]
    thumbnail_key: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Descriptive metadata (what the photograph shows), from the digitisation team's manifest or
    # the web catalogue. ``date_text`` is the date as written ("c. 1925", "1890s"); the years are
    # its normalised range, for date searches and the decade facet.
    title: Mapped[str | None] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    date_text: Mapped[str | None] = mapped_column(String(100))
    date_from: Mapped[int | None] = mapped_column(Integer)
    date_to: Mapped[int | None] = mapped_column(Integer)
    creator: Mapped[str | None] = mapped_column(Text)
    place: Mapped[str | None] = mapped_column(Text)
    subjects: Mapped[str | None] = mapped_column(Text)  # "; "-separated, as in the manifest
    rights: Mapped[str | None] = mapped_column(Text)
    # Kept by database triggers from the item's current derivatives (migration 0002), so search
    # facets are one grouped scan of items: the model of the current "restored" version, and
    # whether a current "style:*" version exists.
    restored_model_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    styled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    collection: Mapped[Collection] = relationship(back_populates="items")
    duplicates: Mapped[list[Duplicate]] = relationship(back_populates="item")


class Duplicate(Base):
    """Another key in the source holding the same bytes as an item: recorded, not a second item."""

    __tablename__ = "duplicates"
    __table_args__ = (UniqueConstraint("collection_id", "source_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id"))
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    source_key: Mapped[str] = mapped_column(String(1024))
    etag: Mapped[str | None] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    item: Mapped[Item] = relationship(back_populates="duplicates")


class Agent(Base):
    """Who or what acted: software (name + version), a model version, or a person."""

    __tablename__ = "agents"
    __table_args__ = (
        UniqueConstraint("kind", "name", "version"),
        CheckConstraint("kind IN ('software', 'model', 'person')", name="kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100), default="")


class Run(Base):
    """One row per flow run: what was asked, with which code, and what came of it."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(f"status IN {RUN_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flow: Mapped[str] = mapped_column(String(100))
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    collection_id: Mapped[int | None] = mapped_column(ForeignKey("collections.id"), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="running")
    counts: Mapped[dict[str, Any] | None]
    timings: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("name", "version"),
        CheckConstraint(f"status IN {MODEL_STATUSES!r}", name="status"),
        CheckConstraint("task IN ('restore', 'style', 'upscale')", name="task"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(100))
    task: Mapped[str] = mapped_column(String(20))
    architecture: Mapped[str] = mapped_column(String(100))
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    weights_uri: Mapped[str] = mapped_column(String(1024))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(20), default="candidate")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Derivative(Base):
    """An immutable output version of an item for one kind (``restored``, ``style:albumen`` ...)."""

    __tablename__ = "derivatives"
    __table_args__ = (
        UniqueConstraint("item_id", "kind", "recipe_hash"),
        UniqueConstraint("item_id", "kind", "version"),
        # At most one current version per item and kind.
        Index(
            "uq_derivatives_current",
            "item_id",
            "kind",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        CheckConstraint("version >= 1", name="version"),
        Index("ix_derivatives_current_kind", "is_current", "kind", "item_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"))
    kind: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    recipe_hash: Mapped[str] = mapped_column(String(64))
    recipe: Mapped[dict[str, Any]] = mapped_column(default=dict)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("derivatives.id"))
    storage_uri: Mapped[str] = mapped_column(String(1024))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"))
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A curator's judgement of this version, one of REVIEW_STATES (checked where it is written;
    # the events keep who, when and the note).
    review: Mapped[str | None] = mapped_column(String(20))


class Event(Base):
    """Append-only, PREMIS-like record of everything done to an item or derivative."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_item_time", "item_id", "occurred_at"),
        Index("ix_events_type_time", "type", "occurred_at"),
        CheckConstraint(f"outcome IN {EVENT_OUTCOMES!r}", name="outcome"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    type: Mapped[str] = mapped_column(String(50))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    outcome: Mapped[str] = mapped_column(String(20))
    detail: Mapped[dict[str, Any] | None]
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("items.id"))
    derivative_id: Mapped[int | None] = mapped_column(ForeignKey("derivatives.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id"), index=True)

    agent: Mapped[Agent] = relationship()
    item: Mapped[Item | None] = relationship()
