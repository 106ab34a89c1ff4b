"""Record a fetched batch in the catalogue: one transaction per batch, one savepoint per file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from archive_db import ledger, queries
from archive_db.models import Agent, Duplicate, Item
from flows.db import sessions_for
from flows.report import IngestSummary
from flows.settings import Settings
from flows.store import open_store
from flows.versions import PACKAGE, code_version, version_of

if TYPE_CHECKING:
    from flows.ingest import Fetched

ITEM_FIELDS = (
    "format", "width", "height", "mode", "bit_depth", "dpi_x", "dpi_y", "icc_description",
    "orientation", "page_count", "capture_date", "make", "model", "exif", "technical",
)  # fmt: skip


def thumbnail_key(collection: str, item_id: int) -> str:
    return f"access/{collection}/{item_id}/thumb.jpg"


class _Recorder:
    """Holds what one batch needs while its rows are written."""

    def __init__(self, session: Session, collection_id: int, run_id: int, source_uri: str, fetched):
        self.session, self.collection_id, self.run_id, self.source_uri = session, collection_id, run_id, source_uri
        keys = [f.key for f in fetched]
        self.items_by_key = queries.items_by_key(session, collection_id, keys)
        self.dups_by_key = queries.duplicates_by_key(session, collection_id, keys)
        self.by_sha = queries.items_by_sha256(session, collection_id, [f.sha256 for f in fetched if f.sha256])
        self.pipeline = ledger.get_or_create_agent(session, "software", PACKAGE, code_version())
        self.pillow = ledger.get_or_create_agent(session, "software", "Pillow", version_of("pillow"))
        self.exifread = ledger.get_or_create_agent(session, "software", "exifread", version_of("exifread"))
        self.thumbs: list[tuple[Item, bytes]] = []

    def event(self, type: str, agent: Agent, outcome: str, detail: dict, item_id: int | None) -> None:
        ledger.add_event(self.session, type, agent, outcome, detail, item_id=item_id, run_id=self.run_id)

    def record(self, f: Fetched, summary: IngestSummary) -> None:
        known = self.items_by_key.get(f.key) or self.dups_by_key.get(f.key)
        if known is not None:
            self._recheck(f, known, summary)
        elif f.sha256 in self.by_sha:
            self._duplicate(f, self.by_sha[f.sha256], summary)
        else:
            self._new_item(f, summary)

    def _recheck(self, f: Fetched, known: Item | Duplicate, summary: IngestSummary) -> None:
        """A catalogued key whose ETag changed: same bytes is fine, other bytes is an alarm."""
        item = known if isinstance(known, Item) else known.item
        if item.sha256 == f.sha256:
            known.etag = f.etag
            summary.unchanged += 1
            return
        reason = (
            f"bytes under catalogued key changed: sha256 {item.sha256[:16]}… became {f.sha256[:16]}…; "
            "the catalogue keeps the original digest"
        )
        self.event("ingestion", self.pipeline, "failure", {"key": f.key, "found_sha256": f.sha256, "reason": reason}, item.id)
        summary.changed += 1
        summary.problems.append((f.key, "changed", reason))

    def _duplicate(self, f: Fetched, item: Item, summary: IngestSummary) -> None:
        self.session.add(
            Duplicate(collection_id=self.collection_id, item_id=item.id, source_key=f.key, etag=f.etag, size=f.size)
        )
        detail = {"duplicate_key": f.key, "of_key": item.source_key, "sha256": f.sha256}
        self.event("ingestion", self.pipeline, "success", detail | {"note": "same bytes under another key"}, item.id)
        summary.duplicate += 1

    def _new_item(self, f: Fetched, summary: IngestSummary) -> None:
        item = Item(
            collection_id=self.collection_id,
            source_uri=self.source_uri,
            source_key=f.key,
            etag=f.etag,
            sha256=f.sha256,
            size=f.size,
            status="ingested" if f.reason is None else "quarantined",
            quarantine_reason=f.reason,
            **{name: f.meta.get(name) for name in ITEM_FIELDS},
        )
        self.session.add(item)
        self.session.flush()
        self.event("ingestion", self.pipeline, "success", {"key": f.key, "etag": f.etag, "size": f.size}, item.id)
        self.event("message digest calculation", self.pipeline, "success", {"algorithm": "sha256", "digest": f.sha256}, item.id)
        if f.reason is None:
            self.event("validation", self.pillow, "success", {"format": item.format, "frames": item.page_count}, item.id)
            exif_error = (item.technical or {}).get("exif_error")
            outcome, detail = ("warning", {"error": exif_error}) if exif_error else ("success", {"tags": len(item.exif or {})})
            self.event("metadata extraction", self.exifread, outcome, detail, item.id)
            summary.new += 1
        else:
            self.event("validation", self.pillow, "failure", {"reason": f.reason}, item.id)
            self.event("quarantine", self.pipeline, "failure", {"reason": f.reason}, item.id)
            summary.quarantined += 1
            summary.problems.append((f.key, "quarantined", f.reason))
        self.by_sha[f.sha256] = item
        if f.thumbnail:
            self.thumbs.append((item, f.thumbnail))


@task(name="record-batch", cache_policy=NO_CACHE)
def record_batch(
    settings: Settings, collection_id: int, run_id: int, source_uri: str, collection: str, fetched: list[Fetched]
) -> IngestSummary:
    """Write items, duplicates, events and thumbnails for one batch; a bad file never sinks the rest."""
    summary = IngestSummary(collection=collection, source=source_uri)
    output = open_store(settings.store.output, settings.store, create=True)
    with sessions_for(settings.db.url).begin() as session:
        rec = _Recorder(session, collection_id, run_id, source_uri, fetched)
        for f in fetched:
            summary.bytes += f.size
            if f.error:
                rec.event("ingestion", rec.pipeline, "failure", {"key": f.key, "error": f.error}, None)
                summary.errors += 1
                summary.problems.append((f.key, "error", f.error))
                continue
            try:
                with session.begin_nested():
                    rec.record(f, summary)
            except Exception as exc:
                reason = f"recording failed: {type(exc).__name__}: {exc}".splitlines()[0][:500]
                rec.event("ingestion", rec.pipeline, "failure", {"key": f.key, "error": reason}, None)
                summary.errors += 1
                summary.problems.append((f.key, "error", reason))
        _write_thumbnails(output, collection, rec.thumbs, settings.ingest.concurrency)
    return summary


def _write_thumbnails(output, collection: str, thumbs: list[tuple[Item, bytes]], threads: int) -> None:
    """Put access copies in parallel; ORM objects are only touched here, in the calling thread."""

    def put(key: str, data: bytes) -> str | None:
        try:
            output.put(key, data, content_type="image/jpeg")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    keys = [thumbnail_key(collection, item.id) for item, _ in thumbs]
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="thumb") as pool:
        errors = list(pool.map(put, keys, [data for _, data in thumbs]))
    for (item, _), key, error in zip(thumbs, keys, errors, strict=True):
        if error:
            item.technical = (item.technical or {}) | {"thumbnail_error": error}
        else:
            item.thumbnail_key = key
