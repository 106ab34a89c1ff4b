"""The ingest flow: list a source, fetch and validate new scans in batches, record provenance."""

from __future__ import annotations

import hashlib
import re
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from flows.batching import chunks, pipelined
from flows.db import ensure_schema, sessions_for
from flows.errors import ConfigError
from flows.imaging import inspect_image
from flows.progress import reporter
from flows.record import record_batch
from flows.report import IngestSummary
from flows.settings import IngestSettings, Settings
from flows.store import CHUNK, ObjectInfo, open_store
from flows.versions import code_version
from archive_db import ledger, queries

SPOOL_BYTES = 64 << 20  # larger masters spill from memory to a temporary file
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


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


class FetchedBatch:
    """A batch's results, opaque to Prefect: it walks lists and dataclasses in task inputs and
    results looking for futures, which costs real time on batches of EXIF-laden records."""

    __slots__ = ("files",)

    def __init__(self, files: list[Fetched]):
        self.files = files


def check_collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise ConfigError(
            f"invalid collection name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def fetch_and_inspect(store, obj: ObjectInfo, cfg: IngestSettings) -> Fetched:
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


@task(name="list-source", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def list_source(source: str, settings: Settings) -> list[ObjectInfo]:
    return list(open_store(source, settings.store).list())


@task(name="fetch-and-inspect-batch", cache_policy=NO_CACHE)
def inspect_batch(source: str, objects: list[ObjectInfo], settings: Settings) -> FetchedBatch:
    cfg = settings.ingest
    threads = max(1, cfg.concurrency // cfg.batches_in_flight)
    store = open_store(source, settings.store, max_pool=threads + 2)
    progress = reporter()

    def one(obj: ObjectInfo) -> Fetched:
        result = fetch_and_inspect(store, obj, cfg)
        progress.advance()
        return result

    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fetch") as pool:
        return FetchedBatch(list(pool.map(one, objects)))


@flow(name="ingest-collection", validate_parameters=False)
def ingest_collection(source: str, collection: str, settings: Settings | None = None) -> IngestSummary:
    """Catalogue every new scan under ``source`` into ``collection``; see ARCHITECTURE.md."""
    settings = settings or Settings()
    started = time.perf_counter()
    check_collection_name(collection)
    ensure_schema(settings.db.url)
    source_uri = open_store(source, settings.store).uri
    output = open_store(settings.store.output, settings.store, create=True)
    listing = list_source(source_uri, settings)
    run_id, collection_id, known = _begin(settings, source_uri, output.uri, collection)

    summary = IngestSummary(collection=collection, source=source_uri, run_id=run_id, listed=len(listing))
    todo = [o for o in listing if o.key not in known or known[o.key][0] != o.etag]
    summary.unchanged = len(listing) - len(todo)
    progress = reporter()
    progress.start(f"ingest {collection}", len(listing))
    progress.advance(summary.unchanged)

    try:
        pipelined(
            chunks(todo, settings.ingest.batch_size),
            submit=lambda batch: inspect_batch.submit(source_uri, quote(list(batch)), settings),
            consume=lambda fetched: summary.add(
                record_batch(settings, collection_id, run_id, source_uri, collection, quote(fetched.files))
            ),
            in_flight=settings.ingest.batches_in_flight,
        )
    except BaseException:
        _finish(settings, run_id, summary, "failed")
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    _finish(settings, run_id, summary, "completed" if summary.errors == 0 else "partial")
    create_markdown_artifact(
        key=f"ingest-{collection.lower().replace('_', '-').replace('.', '-')}",
        markdown=summary.markdown(),
        description=summary.headline(),
    )
    return summary


def _begin(settings: Settings, source_uri: str, output_uri: str, collection: str):
    from prefect.runtime import flow_run

    params = {"source": source_uri, "collection": collection, "output": output_uri}
    params |= {"ingest": settings.ingest.model_dump()}
    with sessions_for(settings.db.url).begin() as session:
        coll = ledger.get_or_create_collection(session, collection)
        run = ledger.start_run(
            session, "ingest", params, code_version(), coll.id, flow_run_id=str(flow_run.id or "")
        )
        return run.id, coll.id, queries.known_sources(session, coll.id)


def _finish(settings: Settings, run_id: int, summary: IngestSummary, status: str) -> None:
    with sessions_for(settings.db.url).begin() as session:
        ledger.finish_run(session, run_id, status, summary.counts(), {"seconds": summary.seconds})
