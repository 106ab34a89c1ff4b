"""Restoring a collection in-process: versioned outputs, sidecars and embedded metadata, ICC/DPI
and 16-bit kept, idempotent re-runs, failures recorded while the batch goes on, new versions
beside old ones."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import xml.etree.ElementTree as ET

import exifread
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from sqlalchemy import select

from archive_db.derivatives import current_derivatives, items_needing, stale_items, versions_of
from archive_db.models import Derivative, Event, Item, Run
from flows.db import sessions_for
from flows.derive.dispatch import plan_batches
from flows.ingest import ingest_collection
from flows.model_versions import register
from flows.restore import restore_collection
from flows.storage.store import open_store, read_all
from flows.versions import git_version
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model
from tests import samples
from tests.flows.test_ingest import write_folder

pytestmark = pytest.mark.usefixtures("prefect_harness")

XMP_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "xmpMM": "http://ns.adobe.com/xap/1.0/mm/",
    "stRef": "http://ns.adobe.com/xap/1.0/sType/ResourceRef#",
    "stEvt": "http://ns.adobe.com/xap/1.0/sType/ResourceEvent#",
}


def checkpoint(tmp_path, version: str, seed: int, name: str = "restore-unet"):
    torch.manual_seed(seed)
    model = create_model("unet_restorer_test")
    torch.nn.init.normal_(model.image_head.weight, std=0.05)  # visibly changes the image
    save_checkpoint(
        model,
        tmp_path / f"{name}-{version}",
        {
            "architecture": "unet_restorer",
            "config": {"base": 8, "depth": 2},
            "name": name,
            "version": version,
            "task": "restore",
            "metrics": {},
        },
    )
    return tmp_path / f"{name}-{version}"


@functools.cache  # the profile records when it was made: make it once
def rgb_png_with_icc_and_dpi() -> bytes:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return samples.encode(samples.clean().resize((120, 90)), "PNG", icc_profile=icc, dpi=(600, 600))


MASTERS = {
    "box1/rgb-icc.png": rgb_png_with_icc_and_dpi,
    "box1/grey16.tif": samples.gray16_tiff,
    "box1/rgb16.tif": samples.rgb16_tiff,
    "box2/rotated.jpg": lambda: samples.exif_jpeg(orientation=6),
    "box2/alpha.png": samples.palette_png_transparent,
    "box2/broken.jpg": lambda: samples.truncated(samples.jpeg()),  # quarantined at ingest
}


@pytest.fixture
def archive(settings, tmp_path, monkeypatch):
    """A catalogued collection and a production model (shipped checkpoints kept out)."""
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.restore = settings.restore.model_copy(update={"batch_pixels": 60_000, "tile": 64, "threads": 2})
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    source = tmp_path / "inbox"
    write_folder(source, {k: make() for k, make in MASTERS.items()})
    ingest_collection(str(source), "letters", settings)
    return settings


def derivatives(settings) -> list[tuple[Item, Derivative]]:
    with sessions_for(settings.db.url)() as s:
        rows = s.execute(
            select(Item, Derivative)
            .join(Derivative, Derivative.item_id == Item.id)
            .order_by(Item.id, Derivative.version)
        ).all()
        s.expunge_all()
        return [tuple(r) for r in rows]


def stored(settings, uri_or_key: str) -> bytes:
    out = open_store(settings.store.output, settings.store)
    return read_all(out, uri_or_key.removeprefix(out.uri + "/"))


def test_restore_writes_one_version_per_item_with_its_provenance(archive):
    settings = archive
    summary = restore_collection("letters", settings=settings)
    assert (summary.selected, summary.restored, summary.failed) == (
        5,
        5,
        0,
    )  # the broken scan was quarantined
    rows = derivatives(settings)
    assert len(rows) == 5
    for item, d in rows:
        assert (d.kind, d.version, d.is_current) == ("restored", 1, True)
        prefix = f"derivatives/letters/{item.id}/restored/v1"
        image = stored(settings, d.storage_uri)
        assert hashlib.sha256(image).hexdigest() == d.sha256 and len(image) == d.size
        meta = json.loads(stored(settings, f"{prefix}/metadata.json"))
        assert meta["master"]["sha256"] == item.sha256 and meta["master"]["key"] == item.source_key
        assert meta["model"]["name"] == "restore-unet" and meta["model"]["version"] == "v1"
        assert meta["model"]["weights_sha256"] == meta["recipe"]["weights_sha256"]
        assert meta["recipe"]["hash"] == d.recipe_hash and meta["run_id"] == d.run_id
        assert {"torch", "pillow", "photo-archive"} <= set(meta["software"]) and meta["seed"] == 0
        for name, f in meta["derivative"]["files"].items():  # every file is whole and as described
            assert hashlib.sha256(stored(settings, f"{prefix}/{name}")).hexdigest() == f["sha256"]
        master_px = np.asarray(Image.open(io.BytesIO(image)))
        assert master_px.shape[:2] == (item.height, item.width) or item.orientation not in (None, 1)
    with sessions_for(settings.db.url)() as s:
        events = s.scalars(select(Event).where(Event.type == "restoration")).all()
        assert len(events) == 5 and all(e.outcome == "success" and e.derivative_id for e in events)
        run = s.get(Run, summary.run_id)
        assert run.status == "completed" and run.counts["restored"] == 5


def test_the_code_version_names_the_commit_and_says_when_the_tree_differs(tmp_path):
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    assert git_version("1.0", tmp_path) == "1.0"  # not a checkout
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "one")
    sha = git("rev-parse", "--short=12", "HEAD")
    (tmp_path / "notes.txt").write_text("untracked files do not count")
    assert git_version("1.0", tmp_path) == f"1.0+g{sha}"
    (tmp_path / "a.py").write_text("x = 2\n")
    assert git_version("1.0", tmp_path) == f"1.0+g{sha}.dirty"


def test_embedded_history_icc_dpi_and_bit_depth(archive):
    settings = archive
    restore_collection("letters", settings=settings)
    by_key = {item.source_key: (item, d) for item, d in derivatives(settings)}

    item, d = by_key["box1/rgb-icc.png"]
    data = stored(settings, d.storage_uri)
    img = Image.open(io.BytesIO(data))
    master = Image.open(io.BytesIO(rgb_png_with_icc_and_dpi()))
    assert img.format == "PNG" and img.mode == "RGB" and img.size == master.size
    assert img.info["icc_profile"] == master.info["icc_profile"]
    assert img.info["dpi"] == pytest.approx((600, 600), abs=0.01)
    tags = exifread.process_file(io.BytesIO(data), details=False)
    assert str(tags["Image Software"]).startswith("photo-archive")
    assert item.sha256 in str(tags["Image ImageDescription"])
    xmp = ET.fromstring(img.info["xmp"] if isinstance(img.info["xmp"], bytes) else img.info["xmp"].encode())
    assert xmp.find(".//xmpMM:DerivedFrom/stRef:documentID", XMP_NS).text == f"sha256:{item.sha256}"
    assert xmp.find(".//xmpMM:History//stEvt:action", XMP_NS).text == "derived"
    assert "restore-unet@v1" in xmp.find(".//xmpMM:History//stEvt:parameters", XMP_NS).text
    assert not np.array_equal(np.asarray(img), np.asarray(master.convert("RGB")))  # the model did something

    for key, shape in (("box1/grey16.tif", 2), ("box1/rgb16.tif", 3)):
        item, d = by_key[key]
        data = stored(settings, d.storage_uri)
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            assert page.dtype == np.uint16 and len(page.shape) == shape  # 16-bit masters give 16-bit TIFFs
            assert item.sha256.encode() in page.tags[700].value  # XMP
            assert page.tags["Software"].value.startswith("photo-archive")

    item, d = by_key["box2/rotated.jpg"]
    data = stored(settings, d.storage_uri)
    assert Image.open(io.BytesIO(data)).getexif().get(0x0112) == 6  # pixels kept as stored, so the tag too
    access = stored(settings, d.storage_uri.rsplit("/", 1)[0] + "/access.jpg")
    assert Image.open(io.BytesIO(access)).format == "JPEG"

    item, d = by_key["box2/alpha.png"]
    out = Image.open(io.BytesIO(stored(settings, d.storage_uri)))
    assert out.mode == "RGBA"


def xmp_source_type(packet: bytes | str) -> str:
    """IPTC DigitalSourceType of an XMP packet (an attribute of its rdf:Description)."""
    root = ET.fromstring(packet if isinstance(packet, bytes) else packet.encode())
    [description] = root.iter("{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    return description.get("{http://iptc.org/std/Iptc4xmpExt/2008-02-29/}DigitalSourceType")


ENHANCED = "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced"


def test_every_written_format_and_the_sidecar_disclose_an_ai_restoration(archive):
    """Every file of a version (PNG or 16-bit TIFF, access JPEG, mask PNG, IIIF pyramid TIFF)
    carries IPTC's Digital Source Type in its XMP, read back as a viewer would; the sidecar says
    the same, with the label."""
    settings = archive
    restore_collection("letters", settings=settings)
    by_key = {item.source_key: d for item, d in derivatives(settings)}
    seen = set()
    for key in ("box1/rgb-icc.png", "box1/rgb16.tif", "box2/alpha.png"):
        d = by_key[key]
        data = stored(settings, d.storage_uri)
        if d.storage_uri.endswith(".tif"):
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                assert xmp_source_type(tif.pages[0].tags[700].value) == ENHANCED
        else:
            assert xmp_source_type(Image.open(io.BytesIO(data)).info["xmp"]) == ENHANCED
        seen.add(d.storage_uri.rsplit(".", 1)[1])
        prefix = d.storage_uri.rsplit("/", 1)[0]
        access = Image.open(io.BytesIO(stored(settings, prefix + "/access.jpg")))
        assert access.format == "JPEG" and xmp_source_type(access.info["xmp"]) == ENHANCED
        mask = Image.open(io.BytesIO(stored(settings, prefix + "/mask.png")))
        assert mask.format == "PNG" and xmp_source_type(mask.info["xmp"]) == ENHANCED
        with tifffile.TiffFile(io.BytesIO(stored(settings, prefix + "/pyramid.tif"))) as tif:  # IIIF's
            assert tif.pages[0].is_tiled and xmp_source_type(tif.pages[0].tags[700].value) == ENHANCED
        meta = json.loads(stored(settings, prefix + "/metadata.json"))
        assert meta["disclosure"] == {"digital_source_type": ENHANCED, "label": "AI-restored", "ai": True}
    assert seen == {"png", "tif"}


def test_rerun_does_nothing_and_a_new_model_adds_versions_beside_the_old(archive, tmp_path):
    settings = archive
    restore_collection("letters", settings=settings)
    again = restore_collection("letters", settings=settings)
    assert again.selected == 0 and again.headline().startswith("Nothing to restore")
    assert len(derivatives(settings)) == 5

    v2 = register(settings, checkpoint(tmp_path, "v2", 2))
    with sessions_for(settings.db.url)() as s:
        coll_id = s.scalar(select(Item.collection_id).limit(1))
        assert len(stale_items(s, coll_id, "restored", v2)) == 5
    summary = restore_collection("letters", model="restore-unet@v2", settings=settings)
    assert summary.restored == 5
    rows = derivatives(settings)
    assert sorted((d.version, d.is_current) for _, d in rows) == [(1, True)] * 5 + [(2, False)] * 5
    with sessions_for(settings.db.url)() as s:
        assert len(current_derivatives(s, coll_id, "restored")) == 5
        item_id = rows[0][0].id
        v1, v2_row = versions_of(s, item_id, "restored")
        assert v1.storage_uri != v2_row.storage_uri and v1.recipe_hash != v2_row.recipe_hash
    assert stored(settings, v1.storage_uri)  # the old version is still there


def test_a_master_changed_after_ingest_fails_alone(archive, tmp_path):
    settings = archive
    (tmp_path / "inbox" / "box2" / "alpha.png").write_bytes(samples.png())  # someone overwrote a master
    summary = restore_collection("letters", settings=settings)
    assert (summary.restored, summary.failed) == (4, 1)
    assert (
        summary.problems[0][0] == "box2/alpha.png" and "master changed since ingest" in summary.problems[0][1]
    )
    with sessions_for(settings.db.url)() as s:
        failed = s.scalars(select(Event).where(Event.type == "restoration", Event.outcome == "failure")).one()
        assert "sha256" in failed.detail["reason"]
        assert s.get(Run, summary.run_id).status == "partial"
        coll_id = s.scalar(select(Item.collection_id).limit(1))
        recipe_hash = s.scalars(select(Derivative.recipe_hash)).first()
        assert [r[1] for r in items_needing(s, coll_id, "restored", recipe_hash)] == ["box2/alpha.png"]


def test_batches_hold_similar_sizes_within_the_pixel_budget():
    rows = [
        (i, f"k{i}", "", w, h)
        for i, (w, h) in enumerate([(100, 100), (1000, 1000), (90, 110), (5000, 5000), (120, 80)])
    ]
    batches = plan_batches(rows, pixel_budget=1_100_000, max_items=2)
    assert batches == [[4, 2], [0, 1], [3]]  # small ones together, the oversized one alone


def test_reprocess_reports_changes_then_promote_and_rollback_move_current(archive, tmp_path):
    from flows.reprocess import promote, reprocess_collection, rollback

    settings = archive
    restore_collection("letters", settings=settings)
    register(settings, checkpoint(tmp_path, "v2", 2))
    report = reprocess_collection("letters", "restore-unet@v2", sample=3, settings=settings)
    assert report.summary.restored == 5 and len(report.changes) == 5
    assert all(
        c.previous_version == 1 and c.new_version == 2 and c.mean_abs_change > 0 for c in report.changes
    )
    sheet = Image.open(io.BytesIO(stored(settings, f"{report.report_prefix}/contact-sheet.jpg")))
    assert sheet.height >= 3 * 256  # three items, each master | v1 | v2
    rows = stored(settings, f"{report.report_prefix}/changes.csv").decode().splitlines()
    assert rows[0].startswith("item_id,key") and len(rows) == 6
    assert reprocess_collection("letters", "restore-unet@v2", settings=settings).summary.selected == 0  # done

    def current_versions() -> list[int]:
        return sorted(d.version for _, d in derivatives(settings) if d.is_current)

    assert current_versions() == [1] * 5
    assert promote(settings, "letters", "restore-unet@v2") == 5
    assert current_versions() == [2] * 5
    assert promote(settings, "letters", "restore-unet@v2") == 0  # already current
    assert rollback(settings, "letters", "restore-unet@v2") == 5
    assert current_versions() == [1] * 5
    with sessions_for(settings.db.url)() as s:
        kinds = [
            e.type
            for e in s.scalars(select(Event).where(Event.type.in_(["reprocessing", "promotion", "rollback"])))
        ]
        assert kinds.count("reprocessing") == kinds.count("promotion") == kinds.count("rollback") == 5
    for _, d in derivatives(settings):  # nothing was deleted
        assert stored(settings, d.storage_uri)


def random_scans(settings, tmp_path, monkeypatch, n: int, size: tuple[int, int], seed: int):
    """A collection of ``n`` noise scans and a production model: (collection id, recipe, item ids)."""
    from flows.restore import prepare

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    rng = np.random.default_rng(seed)
    write_folder(
        tmp_path / "inbox",
        {
            f"scan-{i:02d}.png": samples.encode(
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)), "PNG"
            )
            for i in range(n)
        },
    )
    ingest_collection(str(tmp_path / "inbox"), "letters", settings)
    coll_id, _, recipe = prepare(settings, "letters", "restore@production", "restored")
    with sessions_for(settings.db.url)() as s:
        return coll_id, recipe, [r[0] for r in items_needing(s, coll_id, "restored", recipe.hash)]


def test_a_killed_worker_rerun_leaves_one_version_per_item_and_no_orphans(settings, tmp_path, monkeypatch):
    """Kill a real worker process in the middle of a batch, run the batch again, check the store."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    coll_id, recipe, ids = random_scans(settings, tmp_path, monkeypatch, 14, (160, 200), seed=0)
    # A stray file where the first item's v1 will go, as a worker killed between its writes and
    # its commit would leave: the next attempt must clear it.
    out = open_store(settings.store.output, settings.store, create=True)
    out.put(f"derivatives/letters/{ids[0]}/restored/v1/stray.png", b"half a file")

    script = (
        "import sys, json\nfrom dataclasses import asdict\nfrom flows.derive.worker import restore_batch\n"
        "from flows.settings import Settings\n"
        "restore_batch(json.loads(sys.argv[1]), json.loads(sys.argv[2]), None, Settings())\n"
    )
    env = os.environ | {
        "ARCHIVE_DB__URL": settings.db.url,
        "ARCHIVE_STORE__OUTPUT": settings.store.output,
        "ARCHIVE_RESTORE__TILE": "64",
        "ARCHIVE_RESTORE__THREADS": "1",
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PYTHONPATH": os.getcwd(),
    }
    args = [
        sys.executable,
        "-c",
        script,
        json.dumps(ids),
        json.dumps(__import__("dataclasses").asdict(recipe)),
    ]

    def done() -> int:
        with sessions_for(settings.db.url)() as s:
            return len(s.scalars(select(Derivative.id)).all())

    worker = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while done() == 0 and worker.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    killed_at = done()
    assert 0 < killed_at < len(ids), f"the kill must land mid-batch ({killed_at} of {len(ids)} done)"

    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    rows = derivatives(settings)
    assert sorted(item.id for item, _ in rows) == sorted(ids)  # exactly one version per item
    assert all(d.version == 1 and d.is_current for _, d in rows)
    expected = set()
    for item, _d in rows:
        prefix = f"derivatives/letters/{item.id}/restored/v1"
        meta = json.loads(stored(settings, f"{prefix}/metadata.json"))
        expected |= {f"{prefix}/{name}" for name in [*meta["derivative"]["files"], "metadata.json"]}
    assert {o.key for o in out.list("derivatives/")} == expected  # no orphan objects
    with sessions_for(settings.db.url)() as s:
        successes = s.scalars(
            select(Event).where(Event.type == "restoration", Event.outcome == "success")
        ).all()
        assert sorted(e.item_id for e in successes) == sorted(ids)  # no orphan rows either


def test_two_processes_doing_the_same_work_at_once_never_damage_each_others_versions(
    settings, tmp_path, monkeypatch
):
    """Two real worker processes restore the same items with the same recipe at the same moment
    (on PostgreSQL and SQLite): every version is written by one of them, whole, and recorded once;
    the other skips it and says so in an event of its own run; the store holds nothing unrecorded."""
    import os
    import subprocess
    import sys
    import time

    from prefect.settings import PREFECT_API_URL

    from archive_db import ledger
    from flows.derive.dispatch import batch_outcome

    coll_id, recipe, ids = random_scans(settings, tmp_path, monkeypatch, 24, (96, 128), seed=1)
    with sessions_for(settings.db.url).begin() as s:
        runs = [ledger.start_run(s, "restore", {"test": name}, "test", coll_id).id for name in "ab"]
    go = tmp_path / "go"
    # The worker's function itself (restore_batch.fn), without Prefect's flow-run start-up, which
    # would stagger the two by a second: the race is in the writing.
    script = (
        "import sys, json, time, pathlib\nfrom flows.derive.worker import restore_batch\nfrom flows.settings import Settings\n"
        "settings = Settings()\npathlib.Path(sys.argv[4]).touch()\n"
        "while not pathlib.Path(sys.argv[3]).exists(): time.sleep(0.005)\n"
        "print(json.dumps(restore_batch.fn(json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[5]), settings)))\n"
    )
    env = os.environ | {
        "ARCHIVE_DB__URL": settings.db.url,
        "ARCHIVE_STORE__OUTPUT": settings.store.output,
        "ARCHIVE_RESTORE__TILE": "64",
        "ARCHIVE_RESTORE__THREADS": "2",
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PYTHONPATH": os.getcwd(),
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                json.dumps(ids),
                json.dumps(__import__("dataclasses").asdict(recipe)),
                str(go),
                str(tmp_path / f"ready-{run}"),
                str(run),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for run in runs
    ]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{run}").exists() for run in runs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()  # both at once
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-6000:] for _, e in outs]
    counts = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]
    assert all(c["failed"] == 0 for c in counts), counts
    assert sum(c["restored"] for c in counts) == len(ids)  # each version made once, by one of them

    rows = derivatives(settings)
    assert sorted(item.id for item, _ in rows) == sorted(ids) and all(d.version == 1 for _, d in rows)
    out = open_store(settings.store.output, settings.store)
    expected = set()
    for item, d in rows:
        prefix = f"derivatives/letters/{item.id}/restored/v1"
        meta = json.loads(stored(settings, f"{prefix}/metadata.json"))
        assert meta["run_id"] == d.run_id  # the sidecar is the recording run's, not overwritten
        assert (
            hashlib.sha256(stored(settings, d.storage_uri)).hexdigest() == d.sha256
        )  # the bytes are the recorded ones
        expected |= {f"{prefix}/{name}" for name in [*meta["derivative"]["files"], "metadata.json"]}
    assert {o.key for o in out.list("derivatives/")} == expected  # nothing unrecorded

    # Each run's summary counts its own events: what it made, and what it found made meanwhile.
    outcomes = [batch_outcome(settings, run, ids, recipe) for run in runs]
    assert [len(o["restored"]) for o in outcomes] == [c["restored"] for c in counts]
    assert not outcomes[0]["restored"] & outcomes[1]["restored"]
    assert all(not o["failed"] for o in outcomes)
    meanwhile = [r for o in outcomes for r in o["skipped"].values()]
    assert meanwhile and all(r.startswith("skipped: version 1 was made meanwhile by run ") for r in meanwhile)


def test_a_bad_device_dtype_or_output_is_one_line_even_with_nothing_to_restore(
    archive, capsys, monkeypatch, tmp_path
):
    from flows.cli.main import main

    restore_collection("letters", settings=archive)  # nothing left to restore
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    cases = [
        (
            {"ARCHIVE_DEVICE__DEVICE": "cuda:7"},
            archive.store.output,
            "error: device 'cuda:7': this machine has",
        ),
        ({"ARCHIVE_DEVICE__DEVICE": "tpu"}, archive.store.output, "error: device 'tpu' is not a device name"),
        (
            {"ARCHIVE_DEVICE__DTYPE": "float8"},
            archive.store.output,
            "error: dtype 'float8' is not one of auto, float32",
        ),
        ({}, str(a_file), "error: output store"),
    ]
    for env, output, expected in cases:
        with monkeypatch.context() as m:
            for k, v in env.items():
                m.setenv(k, v)
            for command in (
                ["restore", "--collection", "letters"],
                ["reprocess", "--collection", "letters", "--model", "restore-unet@v1"],
            ):
                assert main(["--db", archive.db.url, "--output", output, *command]) == 1
                err = capsys.readouterr().err.strip()
                assert err.startswith(expected) and "\n" not in err, (command, env, err)


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_colour_pngs_keep_their_depth_through_ingest_restore_and_restore_files(
    settings, tmp_path, monkeypatch, channels
):
    """Pillow reads a 16-bit RGB or RGBA PNG as 8 bits: the pipeline must not. The master decodes
    losslessly, the catalogue's restored version is a 16-bit TIFF, restore-files writes a 16-bit PNG."""
    from flows.cli.main import main
    from flows.imaging.io import png16, read_image

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    rng = np.random.default_rng(channels)
    pixels = rng.integers(0, 65536, (48, 64, channels), dtype=np.uint16)
    if channels == 4:
        pixels[..., 3] = 65535 - rng.integers(
            0, 300, (48, 64), dtype=np.uint16
        )  # nearly opaque, not 8-bit steps
    data = png16(pixels, (300, 300))
    loaded = read_image(data)
    assert loaded.mode == ("RGB;16" if channels == 3 else "RGBA;16") and np.array_equal(loaded.pixels, pixels)

    write_folder(tmp_path / "inbox", {"deep.png": data})
    ingest_collection(str(tmp_path / "inbox"), "letters", settings)
    summary = restore_collection("letters", settings=settings)
    assert summary.restored == 1 and summary.failed == 0
    ((_, d),) = derivatives(settings)
    with tifffile.TiffFile(io.BytesIO(stored(settings, d.storage_uri))) as tif:
        out = tif.pages[0].asarray()
    assert out.dtype == np.uint16 and out.shape == pixels.shape
    assert np.count_nonzero(out % 257) > out.size // 2  # 16-bit values, not 8-bit ones scaled up

    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "deep.png").write_bytes(data)
    assert (
        main(
            [
                "--db",
                settings.db.url,
                "--output",
                settings.store.output,
                "restore-files",
                str(tmp_path / "files" / "deep.png"),
                "--out",
                str(tmp_path / "out"),
                "--tile",
                "64",
            ]
        )
        == 0
    )
    written = (tmp_path / "out" / "deep.png").read_bytes()
    assert written[24] == 16 and written[25] == (2 if channels == 3 else 6)  # IHDR: 16-bit RGB / RGBA
    again = read_image(written)
    assert again.pixels.dtype == np.uint16 and again.pixels.shape == pixels.shape
    assert np.count_nonzero(again.pixels % 257) > again.pixels.size // 2

    # Styling too: from the 16-bit master in the catalogue, and style-files on the file.
    from flows.stylize import stylize_collection

    assert stylize_collection("letters", "albumen", source="master", settings=settings).restored == 1
    ((_, styled),) = [(i, d) for i, d in derivatives(settings) if d.kind == "style:albumen"]
    with tifffile.TiffFile(io.BytesIO(stored(settings, styled.storage_uri))) as tif:
        out = tif.pages[0].asarray()
    assert out.dtype == np.uint16 and out.shape[:2] == pixels.shape[:2]
    assert np.count_nonzero(out % 257) > out.size // 2
    base = ["--db", settings.db.url, "--output", settings.store.output]
    args = [
        "style-files",
        str(tmp_path / "files" / "deep.png"),
        "--style",
        "albumen",
        "--out",
        str(tmp_path / "styled"),
    ]
    assert main([*base, *args]) == 0
    written = (tmp_path / "styled" / "deep.png").read_bytes()
    assert written[24] == 16  # IHDR: 16 bits a channel
    styled_px = read_image(written).pixels
    assert styled_px.dtype == np.uint16 and np.count_nonzero(styled_px % 257) > styled_px.size // 2


def test_cli_refuses_an_unknown_collection_or_model_in_one_line(archive, capsys):
    from flows.cli.main import main

    base = ["--db", archive.db.url, "--output", archive.store.output]
    assert main([*base, "restore", "--collection", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no collection 'nope'") and "\n" not in err
    assert main([*base, "reprocess", "--collection", "letters", "--model", "restore-unet@v9"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no model version matches 'restore-unet@v9'") and "\n" not in err
    assert main([*base, "restore", "--collection", "bad name!"]) != 0
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_curators_mask_is_used_by_the_next_restore_and_named_in_its_recipe(settings, tmp_path, monkeypatch):
    from flows.cli.main import main
    from tests.flows.test_models import pipeline_checkpoint

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.restore = settings.restore.model_copy(update={"tile": 128, "threads": 1})
    pipeline_checkpoint(tmp_path, "v9")
    register(settings, tmp_path / "restore-unet-v9", status="production")
    source = tmp_path / "inbox"
    photo = samples.clean().convert("RGB").resize((96, 64))
    write_folder(
        source, {"a.png": samples.encode(photo, "PNG"), "b.png": samples.encode(photo.rotate(180), "PNG")}
    )
    ingest_collection(str(source), "letters", settings)
    assert restore_collection("letters", settings=settings).restored == 2
    drawn = np.zeros((64, 96), np.uint8)
    drawn[30:34, 8:88] = 255
    Image.fromarray(drawn).save(tmp_path / "a-mask.png")
    Image.fromarray(drawn[:10]).save(tmp_path / "small.png")
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "mask", "letters/a.png", str(tmp_path / "a-mask.png"), "--user", "Ada"]) == 0
    assert main([*base, "mask", "letters/a.png", str(tmp_path / "small.png")]) != 0  # the wrong size: refused
    with sessions_for(settings.db.url)() as session:
        assert [
            r[1] for r in items_needing(session, 1, "restored", _recipe_hash(session), with_masks=True)
        ] == ["a.png"]
    again = restore_collection("letters", settings=settings)
    assert (again.selected, again.restored, again.failed) == (1, 1, 0)
    assert restore_collection("letters", settings=settings).selected == 0  # the same mask: nothing new
    with sessions_for(settings.db.url)() as session:
        rows = session.scalars(
            select(Derivative).where(Derivative.kind == "restored").order_by(Derivative.id)
        ).all()
        mask_row = session.scalars(select(Derivative).where(Derivative.kind == "mask")).one()
        events = session.scalars(select(Event).where(Event.type == "damage mask")).all()
    assert [(r.item_id, r.version) for r in rows] == [(1, 1), (2, 1), (1, 2)]
    assert rows[2].recipe["supplied_mask"] == {"derivative_id": mask_row.id, "sha256": mask_row.sha256}
    assert rows[0].recipe["supplied_mask"] is None and rows[2].recipe_hash != rows[0].recipe_hash
    assert len(events) == 1 and events[0].detail["sha256"] == mask_row.sha256
    output = open_store(settings.store.output, settings.store)
    prefix = rows[2].storage_uri.removeprefix(output.uri + "/").rsplit("/", 1)[0]
    meta = json.loads(read_all(output, f"{prefix}/metadata.json"))
    assert (
        meta["recipe"]["supplied_mask"]["sha256"]
        == hashlib.sha256(read_all(output, "derivatives/letters/1/mask/v1/mask.png")).hexdigest()
    )
    used = np.asarray(Image.open(io.BytesIO(read_all(output, f"{prefix}/mask.png"))))
    assert np.array_equal(used > 127, drawn > 0)  # the saved damage mask is the curator's
    restored = np.asarray(
        Image.open(io.BytesIO(read_all(output, rows[2].storage_uri.removeprefix(output.uri + "/"))))
    )
    outside = np.ones((64, 96), bool)
    outside[28:36, 6:90] = False
    assert np.array_equal(restored[outside], np.asarray(photo)[outside])  # no denoise stage: the rest is kept


def _recipe_hash(session) -> str:
    from flows.model_versions import resolve
    from flows.restore import recipe_for

    return recipe_for(resolve(session, "restore@production"), "restored").hash


def test_reprocessing_from_a_single_unet_to_a_staged_pipeline_reports_and_promotes(archive, tmp_path):
    """The upgrade every archive running restore-unet v5 makes: a staged pipeline registered as a
    new version of the same model, reprocessed beside the old versions, then promoted."""
    from flows.reprocess import promote, reprocess_collection
    from tests.flows.test_models import pipeline_checkpoint

    settings = archive
    restore_collection("letters", settings=settings)
    pipeline_checkpoint(tmp_path, "v2")
    register(settings, tmp_path / "restore-unet-v2")
    report = reprocess_collection("letters", "restore-unet@v2", sample=2, settings=settings)
    assert (report.summary.restored, report.summary.failed, len(report.changes)) == (5, 0, 5)
    assert stored(settings, f"{report.report_prefix}/contact-sheet.jpg")
    assert promote(settings, "letters", "restore-unet@v2") == 5
    made = [d for _, d in derivatives(settings) if d.is_current]
    assert {d.version for d in made} == {2} and all(d.recipe["supplied_mask"] is None for d in made)


def test_a_cli_rollback_after_a_web_promotion_returns_to_the_version_the_curator_replaced(archive, tmp_path):
    """v1 is current; v2 (a reprocess, never promoted) and v3 wait. A curator makes v3 current in the
    web catalogue, replacing v1. `archive rollback --model restore-unet@v3` must bring back v1, the
    version v3 replaced, not v2, which merely comes before v3. Both paths record one vocabulary."""
    from fastapi.testclient import TestClient

    from archive_db.web.app import create_app
    from flows.media import StoreMedia
    from flows.reprocess import promote, reprocess_collection, rollback

    settings = archive
    restore_collection("letters", settings=settings)
    for version, seed in (("v2", 2), ("v3", 3)):
        register(settings, checkpoint(tmp_path, version, seed))
        assert (
            reprocess_collection("letters", f"restore-unet@{version}", settings=settings).summary.restored
            == 5
        )
    token = "t0ken-for-the-test"
    web = TestClient(create_app(sessions_for(settings.db.url), StoreMedia(settings), token))
    for _item, d in derivatives(settings):
        if d.version == 3:
            r = web.post(
                f"/api/derivatives/{d.id}/make-current",
                json={"user": "ada"},
                headers={"Authorization": f"Bearer {token}"},
            )
            assert r.status_code == 200 and r.json()["action"] == "promotion"
    assert sorted(d.version for _, d in derivatives(settings) if d.is_current) == [3] * 5
    assert rollback(settings, "letters", "restore-unet@v3") == 5
    assert sorted(d.version for _, d in derivatives(settings) if d.is_current) == [1] * 5
    assert (
        promote(settings, "letters", "restore-unet@v2") == 5
    )  # the CLI's promotion, read back by the web's rollback below
    with sessions_for(settings.db.url)() as s:
        moves = s.scalars(
            select(Event).where(Event.type.in_(["promotion", "rollback"])).order_by(Event.id)
        ).all()
        by_id = {d.id: d for _, d in derivatives(settings)}
        assert [(e.type, by_id[e.derivative_id].version, e.detail["replaced_version"]) for e in moves] == (
            [("promotion", 3, 1)] * 5 + [("rollback", 1, 3)] * 5 + [("promotion", 2, 1)] * 5
        )
        assert all(by_id[e.detail["replaced"]].version == e.detail["replaced_version"] for e in moves)
        assert {e.detail["kind"] for e in moves} == {"restored"}
