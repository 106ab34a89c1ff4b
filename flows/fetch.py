"""Fetch, hash and inspect source objects with bounded concurrency (threads: decoding and
hashing release the GIL). Imports neither Prefect nor the catalogue."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flows.imaging.inspect import inspect_image
from flows.settings import IngestSettings, StoreSettings
from flows.storage.store import CHUNK, ObjectInfo, ObjectStore, cached_store

SPOOL_BYTES = 64 << 20  # larger masters spill from memory to a temporary file


@dataclass
class Fetched:
    """What ingest learned about one source object, before anything is recorded."""

    key: str
    etag: str | None
    size: int
    sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    thumbnail: bytes | None = None
    reason: str | None = None  # quarantine reason: the file itself is bad
    error: str | None = None  # fetching failed: nothing is recorded, a later run retries


def fetch_and_inspect(store: ObjectStore, obj: ObjectInfo, cfg: IngestSettings) -> Fetched:
    """Stream one object, hashing as it arrives, then decode and describe it."""
    out = Fetched(key=obj.key, etag=obj.etag, size=obj.size)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
        try:
            digest, size = hashlib.sha256(), 0
            with store.open(obj.key) as body:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    spool.write(chunk)
                    size += len(chunk)
        except Exception as exc:
            out.error = f"fetch failed: {type(exc).__name__}: {exc}"[:500]
            return out
        out.sha256, out.size = digest.hexdigest(), size
        spool.seek(0)
        try:
            found = inspect_image(spool, size, cfg.max_pixels, cfg.thumbnail_px)
        except Exception as exc:  # a bug in a decoder must not stop the batch: quarantine it
            out.reason = f"inspection crashed: {type(exc).__name__}: {exc}"[:500]
            return out
    out.meta, out.thumbnail, out.reason = found.meta, found.thumbnail, found.reason
    return out


def fetch_batch(
    source: str,
    settings: StoreSettings,
    objects: list[ObjectInfo],
    cfg: IngestSettings,
    on_done: Callable[[int], None],
) -> list[Fetched]:
    """Fetch and inspect a batch; ``concurrency`` is shared by the batches in flight."""
    threads = max(1, cfg.concurrency // cfg.batches_in_flight)
    # One store (and connection pool) per source is shared by every batch in flight: its pool holds
    # all their threads' connections (sized by one batch's, connections were dropped and reopened).
    store = cached_store(source, settings, cfg.concurrency)

    def one(obj: ObjectInfo) -> Fetched:
        result = fetch_and_inspect(store, obj, cfg)
        on_done(1)
        return result

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
        return list(pool.map(one, objects))
