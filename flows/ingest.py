"""The ingest flow: list a source, fetch and validate new scans in batches, record provenance."""

from __future__ import annotations

import re
import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from archive_db import ledger, queries
from flows.batching import Opaque, chunks, pipelined
from flows.db import ensure_schema, heartbeat, writing
from flows.errors import ConfigError
from flows.fetch import Fetched, fetch_batch
from flows.progress import reporter
from flows.record import record_batch
from flows.report import IngestSummary, artifact_key
from flows.settings import Settings
from flows.storage.store import ObjectInfo, open_store
from flows.versions import code_version

COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_collection_name(name: str) -> str:
    if not COLLECTION_NAME.match(name):
        raise ConfigError(
            f"invalid collection name {name!r}: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


@task(name="list-source", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
def list_source(source: str, settings: Settings) -> Opaque[list[ObjectInfo]]:
    return Opaque(list(open_store(source, settings.store).list()))


@task(name="fetch-and-inspect-batch", cache_policy=NO_CACHE)
def inspect_batch(source: str, objects: list[ObjectInfo], settings: Settings) -> Opaque[list[Fetched]]:
    return Opaque(fetch_batch(source, settings.store, objects, settings.ingest, reporter().advance))


@flow(name="ingest-collection", validate_parameters=False)
def ingest_collection(source: str, collection: str, settings: Settings | None = None) -> IngestSummary:
    """Catalogue every new scan under ``source`` into ``collection``; see ARCHITECTURE.md."""
    settings = settings or Settings()
    started = time.perf_counter()
    check_collection_name(collection)
    ensure_schema(settings.db.url)
    source_uri = open_store(source, settings.store).uri
    output = open_store(settings.store.output, settings.store, create=True)
    listing = list_source(source_uri, settings).value
    run_id, collection_id, known, lacking = _begin(settings, source_uri, output.uri, collection)

    summary = IngestSummary(collection=collection, source=source_uri, run_id=run_id, listed=len(listing))
    todo = [o for o in listing if o.key not in known or known[o.key][0] != o.etag or o.key in lacking]
    summary.unchanged = len(listing) - len(todo)
    progress = reporter()
    progress.start(f"ingest {collection}", len(listing))
    progress.advance(summary.unchanged)

    try:
        with heartbeat(settings.db.url, run_id):  # so a run elsewhere can tell if this one dies
            pipelined(
                chunks(todo, settings.ingest.batch_size),
                submit=lambda batch: inspect_batch.submit(source_uri, quote(list(batch)), settings),
                consume=lambda fetched: summary.add(
                    record_batch(
                        settings, collection_id, run_id, source_uri, collection, quote(fetched.value)
                    )
                ),
                in_flight=settings.ingest.batches_in_flight,
            )
    except BaseException:
        _finish(settings, run_id, summary, "failed")
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    _finish(settings, run_id, summary, "completed" if summary.errors == 0 else "partial")
    create_markdown_artifact(
        key=artifact_key("ingest", collection),
        markdown=summary.markdown(),
        description=summary.headline(),
    )
    return summary


def _begin(settings: Settings, source_uri: str, output_uri: str, collection: str):
    from prefect.runtime import flow_run

    params = {"source": source_uri, "collection": collection, "output": output_uri}
    params |= {"ingest": settings.ingest.model_dump()}
    with writing(settings.db.url) as session:
        coll = ledger.get_or_create_collection(session, collection)
        run = ledger.start_run(
            session, "ingest", params, code_version(), coll.id, flow_run_id=str(flow_run.id or "")
        )
        return (
            run.id,
            coll.id,
            queries.known_sources(session, coll.id),
            queries.keys_lacking_thumbnails(session, coll.id),
        )


def _finish(settings: Settings, run_id: int, summary: IngestSummary, status: str) -> None:
    with writing(settings.db.url) as session:
        ledger.finish_run(session, run_id, status, summary.counts(), {"seconds": summary.seconds})
