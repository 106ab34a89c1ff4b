"""Typed settings (env prefix ``ARCHIVE_``, nested groups with ``__``), resolved once at the edge."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class DbSettings(BaseModel):
    url: str = "sqlite:///./archive.db"
    echo: bool = False


class StoreSettings(BaseModel):
    output: str = "file://./archive-store"
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    multipart_threshold_mb: int = Field(default=64, ge=5)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=4, ge=1)


class IngestSettings(BaseModel):
    concurrency: int = Field(default=8, ge=1, le=256, description="files fetched at once")
    batch_size: int = Field(default=64, ge=1, le=5000, description="files per Prefect task")
    batches_in_flight: int = Field(default=2, ge=1, le=64)
    max_pixels: int = Field(default=400_000_000, ge=1, description="decompression-bomb limit")
    thumbnail_px: int = Field(default=256, ge=16, le=2048)


class RestoreSettings(BaseModel):
    batch_pixels: int = Field(default=48_000_000, ge=1, description="pixels per batch sent to a worker")
    batch_items: int = Field(default=256, ge=1, le=5000, description="most images per batch")
    batches_in_flight: int = Field(default=2, ge=1, le=256, description="batches running at once on a pool")
    select_page: int = Field(
        default=5000, ge=1, le=100_000, description="items a run selects from the catalogue at a time"
    )
    threads: int = Field(
        default=4, ge=1, le=64, description="fetch/decode and encode/write threads per worker"
    )
    tile: int = Field(default=768, ge=64, le=8192)
    access_px: int = Field(default=2048, ge=64, le=20000, description="long side of the JPEG access copy")
    deployment: str = "restore-batch/restore-batch"


class PrefectSettings(BaseModel):
    api_url: str | None = None
    logging_level: str = "WARNING"


class DeviceSettings(BaseModel):
    device: str = "auto"
    dtype: str = "auto"


class WebSettings(BaseModel):
    # Write actions (promote, roll back, review, metadata edits) need this bearer token; without
    # one the web catalogue is read-only.
    token: SecretStr | None = None
    preview_px: int = Field(default=1600, ge=128, le=8192, description="long side of the before/after views")
    # Where IIIF's tiled pyramids are kept (one per master and version, made on first view);
    # empty: a folder in the system's temporary directory.
    iiif_cache: str = ""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ARCHIVE_", env_nested_delimiter="__", extra="ignore")

    db: DbSettings = DbSettings()
    store: StoreSettings = StoreSettings()
    ingest: IngestSettings = IngestSettings()
    prefect: PrefectSettings = PrefectSettings()
    device: DeviceSettings = DeviceSettings()
    restore: RestoreSettings = RestoreSettings()
    web: WebSettings = WebSettings()
