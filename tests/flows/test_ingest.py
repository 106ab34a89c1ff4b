"""The ingest flow under Prefect's test harness, on both catalogues, with every awkward input."""

from __future__ import annotations

import io
import os
import zlib

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from archive_db import queries
from archive_db.models import Duplicate, Event, Item, Run
from flows.db import sessions_for
from flows.fetch import fetch_and_inspect
from flows.ingest import ingest_collection
from flows.settings import IngestSettings
from flows.storage.store import LocalStore, open_store, read_all
from tests import samples

pytestmark = pytest.mark.usefixtures("prefect_harness")

QUARANTINED = {
    "zero-byte.jpg": "empty file",
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    "text-named.jpg": "not a recognised image",
    "bomb.png": "decompression bomb",
}


def write_folder(root, files: dict[str, bytes]) -> None:
    for key, data in files.items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def items_by_key(settings) -> dict[str, Item]:
    with sessions_for(settings.db.url)() as s:
        return {i.source_key: i for i in s.scalars(select(Item))}


def events_of(settings, item_id: int) -> list[tuple[str, str]]:
    with sessions_for(settings.db.url)() as s:
        return [(e.type, e.outcome) for e in queries.item_events(s, item_id)]


def test_every_awkward_input_is_catalogued_or_quarantined(settings, tmp_path):
    files = samples.bad_inputs()
    write_folder(tmp_path / "inbox", files)
    summary = ingest_collection(str(tmp_path / "inbox"), "awkward", settings)

    assert summary.listed == len(files)
    assert (summary.quarantined, summary.duplicate, summary.errors) == (len(QUARANTINED), 1, 0)
    assert summary.new == len(files) - len(QUARANTINED) - 1
    items = items_by_key(settings)
    assert len(items) == len(files) - 1  # the second copy is a duplicate, not an item
    for key, reason in QUARANTINED.items():
        assert items[key].status == "quarantined", key
        assert reason in items[key].quarantine_reason, (key, items[key].quarantine_reason)
        assert ("quarantine", "failure") in events_of(settings, items[key].id)
        assert items[key].thumbnail_key is None
    good = {k: v for k, v in items.items() if k not in QUARANTINED}
    for key, item in good.items():
        assert item.status == "ingested", (key, item.quarantine_reason)
        assert [t for t, _ in events_of(settings, item.id)][:4] == [
            "ingestion",
            "message digest calculation",
            "validation",
            "metadata extraction",
        ], key

    def is_(key, **expected):
        got = {name: getattr(items[key], name) for name in expected}
        assert got == expected, key

    is_("cmyk.jpg", mode="CMYK", format="JPEG", bit_depth=8)
    is_("gray16.tif", mode="I;16", bit_depth=16, width=64, height=48)
    is_("rgb16.tif", format="TIFF", bit_depth=16, dpi_x=1200.0, dpi_y=1200.0)
    is_("palette-transparent.png", mode="P")
    assert items["palette-transparent.png"].technical["transparency"] is True
    is_("multipage.tif", page_count=3, width=120, height=80)
    pages = items["multipage.tif"].technical["pages"]
    assert [(p["width"], p["height"]) for p in pages] == [(120, 80), (80, 120), (60, 60)]
    assert "frame 1 of 3" in items["multipage.tif"].technical["page_choice"]
    is_("animated.gif", page_count=4, format="GIF")
    assert items["animated.gif"].technical["animated"] is True
    assert "exif_error" in items["malformed-exif.jpg"].technical
    assert ("metadata extraction", "warning") in events_of(settings, items["malformed-exif.jpg"].id)
    desc = items["enormous-exif.jpg"].exif["Image ImageDescription"]
    assert len(desc) < 1200 and "more chars" in desc
    is_(
        "rotated.jpg",
        orientation=6,
        width=100,
        height=200,
        make="Epson",
        model="Perfection V850",
        capture_date="1931-07-14T09:30:00",
        dpi_x=600.0,
    )
    is_("icc.jpg", icc_description="sRGB built-in")
    is_("photo.webp", format="WEBP", width=256, height=256)
    is_("one-pixel.png", width=1, height=1)
    is_("panorama.jpg", width=20000, height=200)
    is_("Album 1/Ölgemälde – café no. 3.jpg", width=300, height=200)
    assert (
        items["copies/original.jpg"].sha256
        == __import__("hashlib").sha256(files["copies/original.jpg"]).hexdigest()
    )

    with sessions_for(settings.db.url)() as s:
        [dup] = s.scalars(select(Duplicate)).all()
        assert dup.source_key == "copies/same bytes again.jpg"
        assert dup.item.source_key == "copies/original.jpg"
    dup_events = events_of(settings, items["copies/original.jpg"].id)
    assert dup_events[4:] == [("ingestion", "success")]  # the duplicate is recorded on the original

    out = open_store(settings.store.output, settings.store)
    thumb = Image.open(io.BytesIO(read_all(out, items["rotated.jpg"].thumbnail_key)))
    assert thumb.format == "JPEG" and thumb.mode == "RGB"
    assert thumb.size[1] > thumb.size[0]  # EXIF orientation 6: shown as portrait
    assert max(Image.open(io.BytesIO(read_all(out, items["panorama.jpg"].thumbnail_key))).size) == 256
    gray = Image.open(io.BytesIO(read_all(out, items["gray16.tif"].thumbnail_key))).convert("L")
    assert gray.getextrema()[1] > 200  # the 16-bit ramp is scaled, not clipped to black/white


def test_second_run_over_unchanged_source_ingests_nothing(settings, tmp_path):
    write_folder(
        tmp_path / "inbox", {"a.jpg": samples.jpeg(), "b.png": samples.png(), "c.jpg": samples.jpeg()}
    )
    first = ingest_collection(str(tmp_path / "inbox"), "repeat", settings)
    assert (first.new, first.duplicate) == (2, 1)
    again = ingest_collection(str(tmp_path / "inbox"), "repeat", settings)
    assert (again.listed, again.unchanged, again.new, again.bytes) == (3, 3, 0, 0)
    assert again.nothing_new and "Nothing to ingest" in again.headline()
    with sessions_for(settings.db.url)() as s:
        assert s.scalar(select(func.count()).select_from(Item)) == 2
        runs = s.scalars(select(Run).order_by(Run.id)).all()
        assert [r.counts["new"] for r in runs] == [2, 0] and all(r.finished_at for r in runs)
        assert runs[0].parameters["source"] == (tmp_path / "inbox").resolve().as_uri()


def test_touched_but_unchanged_file_is_not_new_and_changed_bytes_are_flagged(settings, tmp_path):
    inbox = tmp_path / "inbox"
    write_folder(inbox, {"a.jpg": samples.jpeg(), "b.jpg": samples.jpeg((100, 100))})
    ingest_collection(str(inbox), "c", settings)
    os.utime(inbox / "a.jpg", ns=(1, 1))  # new ETag, same bytes
    (inbox / "b.jpg").write_bytes(samples.jpeg((120, 100)))  # same key, other bytes
    summary = ingest_collection(str(inbox), "c", settings)
    assert (summary.unchanged, summary.changed, summary.new) == (1, 1, 0)
    assert summary.problems[0][:2] == ("b.jpg", "changed")
    items = items_by_key(settings)
    assert ("ingestion", "failure") in events_of(settings, items["b.jpg"].id)
    third = ingest_collection(str(inbox), "c", settings)
    assert third.unchanged == 1 and third.changed == 1  # the alarm stays until someone acts


def test_same_bytes_in_a_later_run_is_a_duplicate(settings, tmp_path):
    inbox = tmp_path / "inbox"
    write_folder(inbox, {"a.jpg": samples.jpeg()})
    ingest_collection(str(inbox), "c", settings)
    write_folder(inbox, {"rescan/a copy.jpg": samples.jpeg()})
    summary = ingest_collection(str(inbox), "c", settings)
    assert (summary.new, summary.duplicate, summary.unchanged) == (0, 1, 1)
    assert ingest_collection(str(inbox), "c", settings).unchanged == 2


def test_ingest_from_s3_over_http(settings, bucket, s3_settings):
    settings.store = s3_settings.model_copy(update={"output": f"s3://{bucket}/output"})
    source = open_store(f"s3://{bucket}/inbox/2026", s3_settings)
    files = {
        "Album 1/Ölgemälde – café.jpg": samples.jpeg(),
        "b.jpg": samples.jpeg((64, 64)),
        "dup.jpg": samples.jpeg((64, 64)),
        "broken.png": samples.truncated(samples.png()),
    }
    for key, data in files.items():
        source.put(key, data)
    summary = ingest_collection(source.uri, "s3col", settings)
    assert (summary.new, summary.duplicate, summary.quarantined) == (2, 1, 1)
    items = items_by_key(settings)
    item = items["Album 1/Ölgemälde – café.jpg"]
    assert item.source_uri == f"s3://{bucket}/inbox/2026"
    assert item.etag == source.head("Album 1/Ölgemälde – café.jpg").etag
    out = open_store(f"s3://{bucket}/output", s3_settings)
    assert out.exists(f"access/s3col/{item.id}/thumb.jpg")
    assert ingest_collection(source.uri, "s3col", settings).nothing_new


def test_unreadable_object_is_an_error_not_a_quarantine(tmp_path):
    class Flaky(LocalStore):
        def open(self, key):
            raise ConnectionResetError("peer went away")

    store = Flaky(tmp_path, create=True)
    info = store.put("a.jpg", samples.jpeg())
    result = fetch_and_inspect(store, info, IngestSettings())
    assert result.error and "peer went away" in result.error and result.reason is None


def test_fetch_failures_are_recorded_and_retried_later(settings, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    write_folder(inbox, {"a.jpg": samples.jpeg(), "b.jpg": samples.jpeg((90, 90))})
    original = LocalStore.open

    def flaky(self, key):
        if key == "b.jpg":
            raise ConnectionResetError("peer went away")
        return original(self, key)

    monkeypatch.setattr(LocalStore, "open", flaky)
    summary = ingest_collection(str(inbox), "c", settings)
    assert (summary.new, summary.errors) == (1, 1)
    with sessions_for(settings.db.url)() as s:
        failed = s.scalars(select(Event).where(Event.outcome == "failure")).all()
        assert [e.detail["key"] for e in failed] == ["b.jpg"]
        assert s.scalars(select(Run)).one().status == "partial"
    monkeypatch.setattr(LocalStore, "open", original)
    assert ingest_collection(str(inbox), "c", settings).new == 1


def test_work_goes_to_tasks_in_batches(settings, tmp_path):
    from prefect.client.orchestration import get_client

    write_folder(
        tmp_path / "inbox", {f"{i:03d}.png": samples.one_pixel_png()[:-1] + bytes([i]) for i in range(20)}
    )
    settings.ingest = settings.ingest.model_copy(update={"batch_size": 8})
    ingest_collection(str(tmp_path / "inbox"), "batched", settings)
    with sessions_for(settings.db.url)() as s:
        flow_run_id = s.scalars(select(Run)).one().flow_run_id

    async def task_names():
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return sorted(r.name.rsplit("-", 1)[0] for r in runs)

    import asyncio
    import time

    # The engine sends task runs to the API through its event pipeline, which may still be writing
    # the last one when the flow returns: read until six arrive (or ten seconds pass).
    deadline = time.monotonic() + 10
    names = asyncio.run(task_names())
    while len(names) < 6 and time.monotonic() < deadline:
        time.sleep(0.2)
        names = asyncio.run(task_names())
    # 20 files in batches of 8: three fetch tasks and three record tasks, not one task per file.
    assert names.count("fetch-and-inspect-batch") == 3 and names.count("record-batch") == 3


def test_summary_is_published_as_a_markdown_artifact(settings, tmp_path):
    from prefect.client.orchestration import get_client

    write_folder(tmp_path / "inbox", {"a.jpg": samples.jpeg(), "bad.jpg": b"nope"})
    ingest_collection(str(tmp_path / "inbox"), "art_1", settings)

    async def latest():
        async with get_client() as client:
            return await client.read_latest_artifacts()

    import asyncio

    artifacts = {a.key: a for a in asyncio.run(latest())}
    md = artifacts["ingest-art-1"].data
    assert "| new | 1 |" in md and "| quarantined | 1 |" in md and "`bad.jpg`" in md


def test_a_row_the_database_refuses_loses_only_itself(settings):
    """record-batch writes a batch in one flush; if that fails it redoes the batch file by file."""
    from archive_db import ledger
    from flows.db import ensure_schema
    from flows.fetch import Fetched
    from flows.record import record_batch

    ensure_schema(settings.db.url)
    with sessions_for(settings.db.url).begin() as s:
        coll = ledger.get_or_create_collection(s, "c")
        run = ledger.start_run(s, "ingest", {}, "test", coll.id)
        coll_id, run_id = coll.id, run.id
    good = [Fetched(key=f"{k}.jpg", etag="e", size=3, sha256=k * 64, meta={"format": "JPEG"}) for k in "ab"]
    broken = Fetched(key="broken.jpg", etag="e", size=3, sha256=None)  # NOT NULL violated at flush
    summary = record_batch.fn(settings, coll_id, run_id, "file:///in", "c", [good[0], broken, good[1]])
    assert (summary.new, summary.errors) == (2, 1)
    assert summary.problems[0][:2] == ("broken.jpg", "error") and "IntegrityError" in summary.problems[0][2]
    assert set(items_by_key(settings)) == {"a.jpg", "b.jpg"}
    with sessions_for(settings.db.url)() as s:
        failed = s.scalars(select(Event).where(Event.outcome == "failure")).one()
        assert failed.detail["key"] == "broken.jpg" and failed.item_id is None


def test_two_ingests_of_one_source_at_once_record_each_file_once_and_none_as_its_own_duplicate(
    settings, tmp_path
):
    """Two real `archive ingest` processes over the same folder at the same moment (PostgreSQL and
    SQLite): every key is one item, nothing is a duplicate of itself, and the two runs' counts add up."""
    import subprocess
    import sys

    import numpy as np
    from prefect.settings import PREFECT_API_URL

    from flows.db import ensure_schema

    rng = np.random.default_rng(3)
    write_folder(
        tmp_path / "inbox",
        {
            f"box-{i // 50}/scan-{i:03d}.png": samples.encode(
                Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)), "PNG"
            )
            for i in range(240)
        },
    )
    env = os.environ | {"PREFECT_API_URL": PREFECT_API_URL.value(), "PYTHONPATH": os.getcwd()}
    args = [
        sys.executable,
        "-c",
        "import sys; from flows.cli.main import main; sys.exit(main(sys.argv[1:]))",
        "--db",
        settings.db.url,
        "--output",
        settings.store.output,
        "ingest",
        str(tmp_path / "inbox"),
        "--collection",
        "letters",
        "--batch-size",
        "6",
    ]
    ensure_schema(settings.db.url)
    procs = [
        subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-3000:] for _, e in outs]

    with sessions_for(settings.db.url)() as s:
        keys = s.scalars(select(Item.source_key)).all()
        assert sorted(keys) == sorted(set(keys)) and len(keys) == 240
        assert s.scalars(select(Duplicate)).all() == []  # every file differs: none is anyone's duplicate
        notes = [e.detail for e in s.scalars(select(Event).where(Event.type == "ingestion")).all()]
        assert not [d for d in notes if (d or {}).get("note") == "same bytes under another key"]
        runs = s.scalars(select(Run).where(Run.flow == "ingest")).all()
    assert len(runs) == 2 and sum(r.counts["new"] for r in runs) == 240
    assert all(r.counts["new"] + r.counts["unchanged"] == 240 for r in runs), [r.counts for r in runs]


def test_a_thumbnail_that_could_not_be_written_is_a_counted_failure(settings, tmp_path, monkeypatch):
    """Not only a note on the item: the summary counts it, the run is partial, the CLI exits 1."""
    from flows.cli.main import main

    write_folder(tmp_path / "inbox", {"a.jpg": samples.jpeg(), "b.png": samples.png()})
    real_put = LocalStore.put

    def put(self, key, data, content_type=None):
        if key.endswith("/thumb.jpg") and "/1/" in key:
            raise OSError("disk full")
        return real_put(self, key, data, content_type)

    monkeypatch.setattr(LocalStore, "put", put)

    def ingest_cli() -> int:
        args = ["ingest", str(tmp_path / "inbox"), "--collection", "letters"]
        return main(["--db", settings.db.url, "--output", settings.store.output, *args])

    assert ingest_cli() == 1
    with sessions_for(settings.db.url)() as s:
        run = s.scalars(select(Run).where(Run.flow == "ingest")).one()
        item = s.get(Item, 1)
    assert run.status == "partial" and run.counts["errors"] == 1 and run.counts["new"] == 2
    assert "disk full" in item.technical["thumbnail_error"] and item.thumbnail_key is None

    monkeypatch.setattr(LocalStore, "put", real_put)  # the disk has room again: the next run makes it
    assert ingest_cli() == 0
    with sessions_for(settings.db.url)() as s:
        item = s.get(Item, 1)
        assert item.thumbnail_key and "thumbnail_error" not in (item.technical or {})
        assert s.scalars(select(func.count()).select_from(Item)).one() == 2
    assert (
        read_all(open_store(settings.store.output, settings.store), item.thumbnail_key)[:2] == b"\xff\xd8"
    )  # a JPEG


def test_thumbnail_writes_failing_at_40_percent_through_a_real_proxy_are_counted_and_a_clean_rerun_repairs_them(
    settings, tmp_path, s3_endpoint, s3_settings, bucket
):
    """The output store is moto's S3 server behind a proxy on 127.0.0.1 that answers 40% of the
    thumbnail uploads with 503 SlowDown, 500 or a dropped connection (boto3 tries twice). Every
    upload that still fails is an error in the summary and the run (partial), with a note on its
    item; the masters are all catalogued once. With the faults gone, the next ingest writes exactly
    the missing thumbnails and the run is complete."""
    from tests.services import FaultyProxy

    rng = np.random.default_rng(40)
    files = {
        f"box/scan-{i:02d}.png": samples.encode(
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)), "PNG"
        )
        for i in range(40)
    }
    write_folder(tmp_path / "inbox", files)
    thumbnail_puts = lambda method, path: method == "PUT" and "/access/" in path  # noqa: E731
    # and some of them (by item: ids 1 to 40 in a new catalogue) on every attempt, so that boto3's
    # retries cannot save them all
    doomed = lambda method, path: (  # noqa: E731
        thumbnail_puts(method, path) and zlib.crc32(path.split("/access/")[1].encode()) % 5 == 0
    )
    with FaultyProxy(s3_endpoint, rate=0.4, seed=7, only=thumbnail_puts, always=doomed) as proxy:
        settings.store = s3_settings.model_copy(
            update={"endpoint_url": proxy.url, "output": f"s3://{bucket}/output", "max_attempts": 2}
        )
        faulty = ingest_collection(str(tmp_path / "inbox"), "letters", settings)
        faults = proxy.counts["503"] + proxy.counts["500"] + proxy.counts["dropped"]
        assert faults > 0 and proxy.counts["forwarded"] > 0
        with sessions_for(settings.db.url)() as s:
            items = s.scalars(select(Item)).all()
            run = s.scalars(select(Run).where(Run.flow == "ingest")).one()
        lacking = [i for i in items if i.thumbnail_key is None]
        assert len(items) == 40 and faulty.new == 40  # every master catalogued, once
        assert 0 < len(lacking) == faulty.errors == run.counts["errors"] and run.status == "partial"
        assert all("thumbnail_error" in (i.technical or {}) for i in lacking)
        assert sorted(k for k, what, _ in faulty.problems if what == "thumbnail") == sorted(
            i.source_key for i in lacking
        )

        proxy.rate = 0.0  # the store is healthy again
        clean = ingest_collection(str(tmp_path / "inbox"), "letters", settings)
    assert clean.errors == 0 and clean.new == 0
    with sessions_for(settings.db.url)() as s:
        items = s.scalars(select(Item)).all()
        rerun = s.scalars(select(Run).where(Run.flow == "ingest").order_by(Run.id.desc())).first()
    assert rerun.status == "completed" and len(items) == 40
    out = open_store(f"s3://{bucket}/output", s3_settings)
    for item in items:
        assert item.thumbnail_key and "thumbnail_error" not in (item.technical or {})
        assert read_all(out, item.thumbnail_key)[:2] == b"\xff\xd8"  # a JPEG
