"""Record a fetched batch in the catalogue: one transaction and a few bulk INSERTs per batch.

If the database refuses any row, the batch is redone file by file, each in its own savepoint,
so that one bad file loses only itself.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy.orm import Session

from archive_db import ledger, queries
from archive_db.engine import exclusive
from archive_db.models import Duplicate, Event, Item
from archive_db.types import utcnow
from flows.db import sessions_for
from flows.report import IngestSummary
from flows.settings import Settings
from flows.storage.layout import thumbnail_key
from flows.storage.store import open_store
from flows.versions import PACKAGE, code_version, version_of

if TYPE_CHECKING:
    from flows.fetch import Fetched

ITEM_FIELDS = (
    "format",
    "width",
    "height",
    "mode",
    "bit_depth",
    "dpi_x",
    "dpi_y",
    "icc_description",
    "orientation",
    "page_count",
    "capture_date",
    "make",
    "model",
    "exif",
    "technical",
)


@dataclass(frozen=True)
class New:
    """A reference to a row of ``Pending.items``, whose id is known only after the INSERT."""

    index: int


ItemRef = int | New


@dataclass
class Pending:
    """Rows waiting to be written, plus what they mean for the run summary."""

    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[tuple[ItemRef | None, dict[str, Any]]] = field(default_factory=list)
    duplicates: list[tuple[ItemRef, dict[str, Any]]] = field(default_factory=list)
    thumbs: list[tuple[int, bytes]] = field(default_factory=list)  # (index in items, JPEG)
    by_sha: dict[str, tuple[ItemRef, str]] = field(default_factory=dict)  # sha -> (item, key)


class _Recorder:
    """What one batch needs while its rows are prepared and written."""

    def __init__(
        self, session: Session, collection_id: int, run_id: int, source_uri: str, fetched: list[Fetched]
    ):
        self.session, self.collection_id, self.run_id, self.source_uri = (
            session,
            collection_id,
            run_id,
            source_uri,
        )
        keys = [f.key for f in fetched]
        self.items_by_key = queries.items_by_key(session, collection_id, keys)
        self.dups_by_key = queries.duplicates_by_key(session, collection_id, keys)
        found = queries.items_by_sha256(session, collection_id, [f.sha256 for f in fetched if f.sha256])
        self.by_sha: dict[str, tuple[ItemRef, str]] = {sha: (i.id, i.source_key) for sha, i in found.items()}
        self.agents = {
            "pipeline": ledger.get_or_create_agent(session, "software", PACKAGE, code_version()).id,
            "Pillow": ledger.get_or_create_agent(session, "software", "Pillow", version_of("pillow")).id,
            "exifread": ledger.get_or_create_agent(
                session, "software", "exifread", version_of("exifread")
            ).id,
        }
        self.thumbs: list[tuple[int, bytes]] = []  # (item id, JPEG) once written

    # -- preparing rows (no database access) ------------------------------------------------

    def prepare(self, f: Fetched, p: Pending, summary: IngestSummary) -> None:
        summary.bytes += f.size
        known = self.items_by_key.get(f.key) or self.dups_by_key.get(f.key)
        seen = self.by_sha.get(f.sha256) or p.by_sha.get(f.sha256)
        if f.error:
            self._event(p, None, "ingestion", "pipeline", "failure", {"key": f.key, "error": f.error})
            summary.errors += 1
            summary.problems.append((f.key, "error", f.error))
        elif known is not None:
            self._recheck(f, known, p, summary)
        elif seen is not None:
            self._duplicate(f, *seen, p, summary)
        else:
            self._new_item(f, p, summary)

    def _event(
        self, p: Pending, item: ItemRef | None, type: str, agent: str, outcome: str, detail: dict
    ) -> None:
        row = {
            "type": type,
            "agent_id": self.agents[agent],
            "outcome": outcome,
            "detail": detail,
            "run_id": self.run_id,
            "occurred_at": utcnow(),
        }
        p.events.append((item, row))

    def _recheck(self, f: Fetched, known: Item | Duplicate, p: Pending, summary: IngestSummary) -> None:
        """A catalogued key whose ETag changed: same bytes is fine, other bytes is an alarm."""
        item = known if isinstance(known, Item) else known.item
        if item.sha256 == f.sha256:
            known.etag = f.etag
            summary.unchanged += 1
            if (
                isinstance(known, Item) and item.thumbnail_key is None and f.thumbnail
            ):  # a failed thumbnail, made again
                item.technical = {k: v for k, v in (item.technical or {}).items() if k != "thumbnail_error"}
                self.thumbs.append((item.id, f.thumbnail))
            return
        reason = (
            f"bytes under catalogued key changed: sha256 {item.sha256[:16]}… became {f.sha256[:16]}…; "
            "the catalogue keeps the original digest"
        )
        detail = {"key": f.key, "found_sha256": f.sha256, "reason": reason}
        self._event(p, item.id, "ingestion", "pipeline", "failure", detail)
        summary.changed += 1
        summary.problems.append((f.key, "changed", reason))

    def _duplicate(self, f: Fetched, item: ItemRef, of_key: str, p: Pending, summary: IngestSummary) -> None:
        row = {"collection_id": self.collection_id, "source_key": f.key, "etag": f.etag, "size": f.size}
        p.duplicates.append((item, row))
        detail = {
            "duplicate_key": f.key,
            "of_key": of_key,
            "sha256": f.sha256,
            "note": "same bytes under another key",
        }
        self._event(p, item, "ingestion", "pipeline", "success", detail)
        summary.duplicate += 1

    def _new_item(self, f: Fetched, p: Pending, summary: IngestSummary) -> None:
        ref = New(len(p.items))
        meta = {name: f.meta.get(name) for name in ITEM_FIELDS}
        p.items.append(
            {
                "collection_id": self.collection_id,
                "source_uri": self.source_uri,
                "source_key": f.key,
                "etag": f.etag,
                "sha256": f.sha256,
                "size": f.size,
                "quarantine_reason": f.reason,
                "status": "ingested" if f.reason is None else "quarantined",
                **meta,
            }
        )
        p.by_sha[f.sha256] = (ref, f.key)
        self._event(
            p, ref, "ingestion", "pipeline", "success", {"key": f.key, "etag": f.etag, "size": f.size}
        )
        self._event(
            p,
            ref,
            "message digest calculation",
            "pipeline",
            "success",
            {"algorithm": "sha256", "digest": f.sha256},
        )
        if f.reason is None:
            self._event(
                p,
                ref,
                "validation",
                "Pillow",
                "success",
                {"format": meta["format"], "frames": meta["page_count"]},
            )
            exif_error = (meta["technical"] or {}).get("exif_error")
            outcome, detail = (
                ("warning", {"error": exif_error})
                if exif_error
                else ("success", {"tags": len(meta["exif"] or {})})
            )
            self._event(p, ref, "metadata extraction", "exifread", outcome, detail)
            summary.new += 1
            if f.thumbnail:
                p.thumbs.append((ref.index, f.thumbnail))
        else:
            self._event(p, ref, "validation", "Pillow", "failure", {"reason": f.reason})
            self._event(p, ref, "quarantine", "pipeline", "failure", {"reason": f.reason})
            summary.quarantined += 1
            summary.problems.append((f.key, "quarantined", f.reason))

    # -- writing ------------------------------------------------------------------------------

    def write(self, p: Pending) -> None:
        """Three bulk INSERTs: items (ids returned in order), then duplicates and events."""
        ids = ledger.insert_items(self.session, p.items)
        resolve = lambda ref: ids[ref.index] if isinstance(ref, New) else ref  # noqa: E731
        ledger.insert_rows(
            self.session, Duplicate, [row | {"item_id": resolve(r)} for r, row in p.duplicates]
        )
        events = [row | {"item_id": None if r is None else resolve(r)} for r, row in p.events]
        ledger.insert_rows(self.session, Event, events)
        self.session.flush()  # ETag updates of rechecked keys
        self.by_sha |= {sha: (resolve(ref), key) for sha, (ref, key) in p.by_sha.items()}
        self.thumbs += [(ids[index], data) for index, data in p.thumbs]

    def record_all(self, fetched: list[Fetched], summary: IngestSummary) -> None:
        pending = Pending()
        for f in fetched:
            self.prepare(f, pending, summary)
        self.write(pending)

    def record_each(self, fetched: list[Fetched], summary: IngestSummary) -> None:
        for f in fetched:
            part, pending = IngestSummary(summary.collection, summary.source), Pending()
            try:
                with self.session.begin_nested():
                    self.prepare(f, pending, part)
                    self.write(pending)
            except Exception as exc:
                reason = f"recording failed: {type(exc).__name__}: {exc}".splitlines()[0][:500]
                part = IngestSummary(summary.collection, summary.source, errors=1, bytes=f.size)
                part.problems.append((f.key, "error", reason))
                failed = Pending()
                self._event(failed, None, "ingestion", "pipeline", "failure", {"key": f.key, "error": reason})
                self.write(failed)
            summary.add(part)


@task(name="record-batch", cache_policy=NO_CACHE)
def record_batch(
    settings: Settings,
    collection_id: int,
    run_id: int,
    source_uri: str,
    collection: str,
    fetched: list[Fetched],
) -> IngestSummary:
    """Write items, duplicates, events and thumbnails for one batch; a bad file never sinks the rest."""
    summary = IngestSummary(collection=collection, source=source_uri)
    output = open_store(settings.store.output, settings.store, create=True)
    args = (collection_id, run_id, source_uri, fetched)
    with sessions_for(settings.db.url).begin() as session:
        # One recorder per collection at a time (across processes): two ingests of one source at
        # once must each read the other's committed items, or a file is recorded as a duplicate
        # of itself. Fetching and decoding, the slow part, ran before, in parallel.
        exclusive(session, "ingest records", collection_id)
        rec = _Recorder(session, *args)
        try:
            with session.begin_nested():
                rec.record_all(fetched, summary)
        except Exception:
            # Some row of the batch is bad and the savepoint undid them all: redo file by file.
            summary = IngestSummary(collection=collection, source=source_uri)
            rec = _Recorder(session, *args)
            rec.record_each(fetched, summary)
        for key, error in _write_thumbnails(
            session, output, collection, rec.thumbs, settings.ingest.concurrency
        ):
            summary.errors += (
                1  # counted where the user looks: the summary, the exit status, the run's status
            )
            summary.problems.append((key, "thumbnail", f"thumbnail not written: {error}"))
    return summary


def _write_thumbnails(
    session: Session, output, collection: str, thumbs: list[tuple[int, bytes]], threads: int
) -> list[tuple[str, str]]:
    """Put access copies in parallel, then record their keys (or why one is missing, on the
    item); returns (source key, error) of those that failed."""

    def put(key: str, data: bytes) -> str | None:
        try:
            output.put(key, data, content_type="image/jpeg")
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        return None

    keys = [thumbnail_key(collection, item_id) for item_id, _ in thumbs]
    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="thumb") as pool:
        errors = list(pool.map(put, keys, [data for _, data in thumbs]))
    written = [
        {"id": item_id, "thumbnail_key": key}
        for (item_id, _), key, err in zip(thumbs, keys, errors, strict=True)
        if not err
    ]
    ledger.update_items(session, written)
    failed = []
    for (item_id, _), error in zip(thumbs, errors, strict=True):
        if error:
            item = session.get(Item, item_id)
            item.technical = (item.technical or {}) | {"thumbnail_error": error}
            failed.append((item.source_key, error))
    return failed
