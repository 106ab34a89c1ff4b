"""Catalogue queries at archive scale: 1,000,000 items and 2,000,000 derivatives.

Builds the schema with the project's migrations in a fresh SQLite file (and in a throwaway
PostgreSQL cluster when its binaries are on PATH), fills it (not timed): one collection of
900,000 items and one of 100,000, each item with a v1 made by restore-unet v1 and a v2 made by
v2, v2 current for 90% of the items. Then times, median of 3:
- stale selection: the items of the big collection whose current version is older than v2;
- items needing a recipe (a new model v3), first page of 10,000 (the dispatcher's query);
- paging through the current derivatives, 100 a page, keyset (first 50 pages and 50 deep ones);
- a reprocess of every item (both collections, with v3) in a child process: the real
  ``reprocess-collection`` flow, its work selected in keyset pages, with a stub batch processor
  that records each item's success event and writes nothing else. First the selection alone
  (rows selected per second), then the whole dispatch; the child's peak memory (VmHWM).
Goals: stale selection under 1 s, a page under 50 ms, the reprocess's peak memory under 500 MB.

    .venv/bin/python bench/catalogue.py [--items 1000000] [--no-postgres]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session  # noqa: E402

from archive_db.derivatives import current_derivatives, items_needing, stale_items  # noqa: E402
from archive_db.engine import make_engine  # noqa: E402
from archive_db.migrate import upgrade  # noqa: E402
from archive_db.models import Collection, ModelVersion  # noqa: E402
from bench._bulk import load, on_each_database  # noqa: E402


def fill(engine, n_items: int) -> dict:
    big = n_items * 9 // 10
    now = datetime.now(UTC)
    with Session(engine) as s:
        colls = [Collection(name="big"), Collection(name="small")]
        models = [
            ModelVersion(
                name="restore-unet",
                version=v,
                task="restore",
                architecture="unet_restorer",
                weights_uri=f"models/restore-unet/{v}",
                weights_sha256=c * 64,
                status="candidate",
            )
            for v, c in (("v1", "1"), ("v2", "2"), ("v3", "3"))
        ]
        s.add_all(colls + models)
        s.commit()
        ids = {
            "big": colls[0].id,
            "small": colls[1].id,
            "v1": models[0].id,
            "v2": models[1].id,
            "v3": models[2].id,
        }
    item_cols = ("id", "collection_id", "source_uri", "source_key", "sha256", "size", "status", "created_at")
    der_cols = (
        "item_id",
        "kind",
        "version",
        "recipe_hash",
        "recipe",
        "model_version_id",
        "storage_uri",
        "sha256",
        "size",
        "is_current",
        "created_at",
    )

    def items(start, stop):
        for i in range(start, stop):
            coll = ids["big"] if i <= big else ids["small"]
            yield (
                i,
                coll,
                "s3://scans/inbox",
                f"box{i // 1000}/scan-{i}.tif",
                f"{i:064x}",
                1_000_000,
                "ingested",
                now,
            )

    def derivatives(start, stop):
        for i in range(start, stop):
            current_v2 = i % 10 != 0
            for version, model in ((1, "v1"), (2, "v2")):
                yield (
                    i,
                    "restored",
                    version,
                    f"{version:064x}",
                    "{}",
                    ids[model],
                    f"s3://archive/derivatives/{i}/restored/v{version}/scan-{i}.png",
                    f"{i + version:064x}",
                    5_000_000,
                    (version == 2) == current_v2,
                    now,
                )

    load(engine, n_items, [("items", item_cols, items), ("derivatives", der_cols, derivatives)])
    return ids


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(label: str, url: str, n_items: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    ids = fill(engine, n_items)
    print(
        f"{label}: filled {n_items:,} items and {2 * n_items:,} derivatives in {time.perf_counter() - started:.0f} s"
    )
    with Session(engine) as s:
        v2 = s.get(ModelVersion, ids["v2"])
        t, stale = timed(lambda: stale_items(s, ids["big"], "restored", v2))
        print(
            f"  stale selection (big collection, older than v2): {t * 1000:8.1f} ms  ({len(stale):,} items)  goal < 1000 ms"
        )
        t, needing = timed(lambda: items_needing(s, ids["big"], "restored", "f" * 64, limit=10_000))
        print(
            f"  items needing a new recipe, first 10,000:        {t * 1000:8.1f} ms  ({len(needing):,} items)"
        )

        def page_times(after: int, n: int = 50) -> list[float]:
            """Seconds for each of ``n`` consecutive keyset pages of 100, starting after ``after``."""
            times = []
            for _ in range(n):
                started = time.perf_counter()
                page = current_derivatives(s, ids["big"], "restored", after_id=after, limit=100)
                times.append(time.perf_counter() - started)
                assert len(page) == 100
                after = page[-1].item_id
                s.expunge_all()
            return times

        pages, deep = page_times(0), page_times(n_items * 8 // 10)
        print(
            f"  current derivatives, 100 a page: first 50 pages median {statistics.median(pages) * 1000:.1f} ms "
            f"(max {max(pages) * 1000:.1f}); 50 pages from item {n_items * 8 // 10:,} median "
            f"{statistics.median(deep) * 1000:.1f} ms (max {max(deep) * 1000:.1f})  goal < 50 ms"
        )
    engine.dispose()
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--reprocess-child", url], check=True)


def stub_batch(item_ids: list[int], recipe: dict, run_id: int, settings) -> None:
    """The benchmark's batch processor: each item's success event, as a worker records it after
    writing the files (here nothing is written but these rows), in one statement."""
    from sqlalchemy import insert

    from archive_db import ledger
    from archive_db.models import Event
    from flows.db import writing
    from flows.derive.operations import operation

    with writing(settings.db.url) as session:
        name, version = recipe["model"].split("@")
        agent = ledger.get_or_create_agent(session, "model", name, version)
        event = operation(recipe["operation"]).event
        session.execute(
            insert(Event),
            [
                {"type": event, "outcome": "success", "agent_id": agent.id, "item_id": i, "run_id": run_id}
                for i in item_ids
            ],
        )


def reprocess_child(url: str) -> None:
    """Run in a fresh process (its peak memory is its own): select, then reprocess, every item."""
    import tempfile

    import flows.derive.dispatch
    from bench._memory import AnonPeak, peak_rss_mb
    from flows.reprocess import reprocess_collection
    from flows.restore import prepare, work_pages
    from flows.settings import DbSettings, RestoreSettings, Settings, StoreSettings

    flows.derive.dispatch.restore_batch = stub_batch
    with tempfile.TemporaryDirectory(prefix="bench-out-") as out:
        settings = Settings(
            db=DbSettings(url=url),
            store=StoreSettings(output=Path(out).as_uri()),
            restore=RestoreSettings(batch_items=5000, batch_pixels=10**12),
        )
        collections = ("big", "small")
        with AnonPeak() as heap:
            started, selected = time.perf_counter(), 0
            for name in collections:
                coll_id, row, recipe = prepare(settings, name, "restore-unet@v3", "restored")
                selected += sum(len(p) for p in work_pages(settings, coll_id, row, recipe, stale_only=True))
            seconds = time.perf_counter() - started
            selection_peak = heap.mb
            print(
                f"  reprocess selection alone: {selected:,} items in {seconds:.1f} s, "
                f"{selected / seconds:,.0f} rows selected per second ({settings.restore.select_page:,} a page)"
            )
            started, done = time.perf_counter(), 0
            for name in collections:
                report = reprocess_collection(name, "restore-unet@v3", settings=settings)
                done += report.summary.restored
                assert report.summary.selected == report.summary.restored, report.summary.headline()
            seconds = time.perf_counter() - started
        print(
            f"  reprocess dispatch (stub processor): {done:,} items in {seconds:.1f} s "
            f"({done / seconds:,.0f} items/s); peak memory {heap.mb:.0f} MB  goal < 500 MB"
        )
        print(
            f"    (heap, RssAnon sampled every 20 ms; {selection_peak:.0f} MB after the selection alone; "
            f"with the pages of files the process maps, such as SQLite's catalogue, VmHWM {peak_rss_mb():.0f} MB)"
        )


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--reprocess-child":
        reprocess_child(sys.argv[2])
        return 0
    return on_each_database(__doc__, measure)


if __name__ == "__main__":
    sys.exit(main())
