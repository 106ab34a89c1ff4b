"""Fixity audit: re-read every master and every recorded derivative file, compare each sha256 with
the catalogue, list version folders the catalogue does not record, and record every result."""

from __future__ import annotations

import hashlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from archive_db import ledger, queries
from flows.batching import chunks, pipelined
from flows.db import ensure_schema, heartbeat, writing
from flows.errors import NotFound, StoreError
from flows.progress import reporter
from flows.settings import Settings
from flows.storage.layout import collection_derivatives, split_storage_uri, version_folder_of
from flows.storage.store import CHUNK, open_store
from flows.versions import PACKAGE, code_version

Row = tuple  # item id, store uri, key, expected sha256[, derivative id]


@dataclass
class Check:
    item_id: int
    key: str
    status: str  # ok | mismatch | missing | error | orphan
    found: str | None = None
    error: str | None = None
    derivative_id: int | None = None  # a derivative's file, not the master


@dataclass
class AuditSummary:
    collection: str
    run_id: int | None = None
    checked: int = 0
    ok: int = 0
    mismatch: int = 0
    missing: int = 0
    error: int = 0
    orphan: int = 0  # version folders in the output store that no catalogue row records
    derivatives: int = 0  # of ``checked``, derivative files
    seconds: float = 0.0
    failures: list[Check] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.mismatch + self.missing + self.error + self.orphan

    def rows(self) -> list[tuple[str, str]]:
        names = ("checked", "derivatives", "ok", "mismatch", "missing", "error", "orphan")
        return [*((n, str(getattr(self, n))) for n in names), ("seconds", f"{self.seconds:.2f}")]

    def headline(self) -> str:
        what = f"{self.checked - self.derivatives} masters" + (
            f" and {self.derivatives} derivative files" if self.derivatives else ""
        )
        if not self.failed:
            return f"Fixity audit of '{self.collection}': all {what} match the catalogue."
        return (
            f"Fixity audit of '{self.collection}': {self.failed} FAILED in {what} "
            f"({self.mismatch} changed, {self.missing} missing, {self.error} unreadable, "
            f"{self.orphan} unrecorded version folders)."
        )

    def markdown(self) -> str:
        lines = [
            f"# Fixity audit of `{self.collection}`",
            "",
            self.headline(),
            "",
            "| measure | value |",
            "|---|---|",
        ]
        lines += [f"| {n} | {v} |" for n, v in self.rows()]
        if self.failures:
            lines += ["", "| item | key | status | detail |", "|---|---|---|---|"]
            lines += [
                f"| {c.item_id} | `{c.key}` | {c.status} | {c.error or c.found or ''} |"
                for c in self.failures
            ]
        return "\n".join(lines) + "\n"


def check_one(store, row: Row) -> Check:
    item_id, _, key, expected = row[:4]
    digest = hashlib.sha256()
    try:
        with store.open(key) as body:
            while chunk := body.read(CHUNK):
                digest.update(chunk)
    except NotFound:
        return Check(item_id, key, "missing", error="object not found")
    except Exception as exc:
        return Check(item_id, key, "error", error=f"{type(exc).__name__}: {exc}"[:300])
    found = digest.hexdigest()
    return Check(item_id, key, "ok" if found == expected else "mismatch", found=found)


@task(name="fixity-check-batch", cache_policy=NO_CACHE)
def check_batch(rows: list[Row], settings: Settings) -> list[Check]:
    stores: dict[str, object] = {}
    progress = reporter()

    def one(row: Row) -> Check:
        uri = row[1]
        try:
            store = stores.get(uri) or stores.setdefault(uri, open_store(uri, settings.store))
        except Exception as exc:
            result = Check(row[0], row[2], "error", error=str(exc)[:300])
        else:
            result = check_one(store, row)
        result.derivative_id = row[4] if len(row) > 4 else None
        progress.advance()
        return result

    threads = max(1, settings.ingest.concurrency // settings.ingest.batches_in_flight)
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="fixity") as pool:
        return list(pool.map(one, rows))


@task(name="record-fixity", cache_policy=NO_CACHE)
def record_checks(settings: Settings, run_id: int, checks: list[Check]) -> None:
    with writing(settings.db.url) as session:
        agent = ledger.get_or_create_agent(session, "software", PACKAGE, code_version())
        for c in checks:
            detail = {"algorithm": "sha256", "status": c.status, "found": c.found, "error": c.error}
            outcome = "success" if c.status == "ok" else "failure"
            if c.derivative_id is not None or c.status == "orphan":
                detail["key"] = c.key
            ledger.add_event(
                session,
                "fixity check",
                agent,
                outcome,
                detail,
                item_id=c.item_id,
                derivative_id=c.derivative_id,
                run_id=run_id,
            )


@flow(name="fixity-audit", validate_parameters=False)
def fixity_audit(collection: str, settings: Settings | None = None) -> AuditSummary:
    """Re-read every master of ``collection`` and record a fixity check per item."""
    settings = settings or Settings()
    started = time.perf_counter()
    ensure_schema(settings.db.url, create=False)
    with writing(settings.db.url) as session:
        coll = queries.collection_by_name(session, collection)
        if coll is None:
            raise NotFound(f"no collection named {collection!r} in the catalogue")
        rows = queries.items_for_audit(session, coll.id)
        recorded = queries.derivatives_for_audit(session, coll.id)
        run = ledger.start_run(session, "fixity-audit", {"collection": collection}, code_version(), coll.id)
        run_id = run.id
    summary = AuditSummary(collection=collection, run_id=run_id)
    rows = [*rows, *(_derivative_row(item_id, uri, sha, d_id) for item_id, uri, sha, d_id in recorded)]
    reporter().start(f"audit {collection}", len(rows))

    def consume(checks: list[Check]) -> None:
        record_checks(settings, run_id, checks)
        for c in checks:
            summary.checked += c.status != "orphan"
            summary.derivatives += c.derivative_id is not None
            setattr(summary, c.status, getattr(summary, c.status) + 1)
            if c.status != "ok":
                summary.failures.append(c)

    try:
        with heartbeat(settings.db.url, run_id):  # so a run elsewhere can tell if this one dies
            pipelined(
                chunks(rows, settings.ingest.batch_size),
                submit=lambda batch: check_batch.submit(list(batch), settings),
                consume=consume,
                in_flight=settings.ingest.batches_in_flight,
            )
        consume(orphans(settings, collection, [(uri, d_id) for _, uri, _, d_id in recorded]))
    except BaseException:
        _finish(settings, summary, "failed")
        raise
    summary.seconds = round(time.perf_counter() - started, 3)
    # The audit itself completed; what it found is in the counts and the events.
    _finish(settings, summary, "completed")
    create_markdown_artifact(key="fixity-audit", markdown=summary.markdown(), description=summary.headline())
    return summary


def _derivative_row(item_id: int, storage_uri: str, sha256: str, derivative_id: int) -> Row:
    """A derivative file as an audit row: its store (the part before ``/derivatives/``) and key."""
    store_uri, key = split_storage_uri(storage_uri)
    return (item_id, store_uri, key, sha256, derivative_id)


def orphans(settings: Settings, collection: str, recorded: list[tuple[str, int]]) -> list[Check]:
    """Version folders under the output store's ``derivatives/COLLECTION/`` that no derivative row
    records (a run killed between its writes and its commit, or files put there by hand)."""
    known = {_derivative_row(0, uri, "", 0)[2].rsplit("/", 1)[0] for uri, _ in recorded}
    found: dict[str, int] = {}
    try:
        output = open_store(settings.store.output, settings.store)
    except StoreError:  # no output store yet: nothing was ever written
        return []
    for obj in output.list(collection_derivatives(collection)):
        folder = version_folder_of(obj.key)
        if folder is not None:
            found.setdefault(*folder)
    return [
        Check(item_id, prefix, "orphan", error="a version folder the catalogue does not record")
        for prefix, item_id in sorted(found.items())
        if prefix not in known
    ]


def _finish(settings: Settings, summary: AuditSummary, status: str) -> None:
    counts = {
        n: getattr(summary, n)
        for n in ("checked", "derivatives", "ok", "mismatch", "missing", "error", "orphan")
    }
    with writing(settings.db.url) as session:
        ledger.finish_run(session, summary.run_id, status, counts, {"seconds": summary.seconds})
