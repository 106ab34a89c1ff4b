"""`archive export-bag`: a collection as a BagIt bag that bagit's own validator accepts, with
masters from a folder or from S3, current or all versions, and nothing written over."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import bagit
import pytest
from sqlalchemy import select

from archive_db.models import Derivative, Item
from flows.cli.main import main
from flows.db import sessions_for
from flows.ingest import ingest_collection
from flows.restore import restore_collection
from flows.storage.store import open_store
from tests import samples
from tests.flows.test_ingest import write_folder
from tests.flows.test_restore import checkpoint, register, stored

pytestmark = pytest.mark.usefixtures("prefect_harness")

MASTERS = {
    "box1/harbour.png": lambda: samples.encode(samples.clean().resize((64, 48)), "PNG"),
    "box1/grey16.tif": samples.gray16_tiff,
    "box2/portrait.jpg": lambda: samples.jpeg((40, 56)),
}


def cli(settings, *args: str) -> int:
    return main(["--db", settings.db.url, "--output", settings.store.output, *args])


def catalogued(settings) -> list[tuple[Item, list[Derivative]]]:
    with sessions_for(settings.db.url)() as s:
        items = s.scalars(select(Item).order_by(Item.id)).all()
        out = [(i, s.scalars(select(Derivative).where(Derivative.item_id == i.id)).all()) for i in items]
        s.expunge_all()
        return out


@pytest.fixture
def restored(settings, tmp_path, monkeypatch):
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.restore = settings.restore.model_copy(update={"tile": 64, "threads": 2})
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    write_folder(tmp_path / "inbox", {k: make() for k, make in MASTERS.items()})
    ingest_collection(str(tmp_path / "inbox"), "letters", settings)
    restore_collection("letters", settings=settings)
    return settings


def files_of(bag: Path) -> set[str]:
    return {str(p.relative_to(bag / "data")) for p in (bag / "data").rglob("*") if p.is_file()}


def test_a_collection_exports_as_a_valid_bag_with_records_events_versions_and_masters(
    restored, tmp_path, capsys
):
    settings = restored
    out = tmp_path / "bag"
    args = ("--out", str(out), "--masters", "--iiif-base", "https://archive.example.org")
    assert cli(settings, "export-bag", "--collection", "letters", *args) == 0
    assert "3 items" in capsys.readouterr().out
    bag = bagit.Bag(str(out))
    bag.validate()  # bagit's own validator: every payload file against manifest-sha256.txt
    assert bag.algorithms == ["sha256"] and bag.info["Payload-Items"] == "3"
    got = files_of(out)
    for item, versions in catalogued(settings):
        base = Path("letters") / str(item.id)
        [d] = versions
        image = d.storage_uri.rsplit("/", 1)[1]
        assert {
            str(base / f)
            for f in (
                "item.json",
                "events.json",
                f"restored/v1/{image}",
                "restored/v1/metadata.json",
                "restored/v1/access.jpg",
                "restored/v1/mask.png",
            )
        } <= got
        master = out / "data" / base / "master" / item.source_key.rsplit("/", 1)[1]
        assert hashlib.sha256(master.read_bytes()).hexdigest() == item.sha256  # the master, as catalogued
        copy = (out / "data" / base / "restored" / "v1" / image).read_bytes()
        assert hashlib.sha256(copy).hexdigest() == d.sha256 and copy == stored(settings, d.storage_uri)
        record = json.loads((out / "data" / base / "item.json").read_text())
        assert (
            record["sha256"] == item.sha256 and record["versions"][0]["disclosure"]["label"] == "AI-restored"
        )
        from iiif_prezi3 import Manifest

        iiif = json.loads((out / "data" / base / "manifest.json").read_text())
        Manifest(**iiif)
        assert iiif["id"] == f"https://archive.example.org/iiif/presentation/items/{item.id}/manifest.json"
        events = json.loads((out / "data" / base / "events.json").read_text())["events"]
        assert [e["eventType"] for e in events][:1] == ["ingestion"] and "restoration" in {
            e["eventType"] for e in events
        }
        assert all(
            e["linkingObjectIdentifier"][0]["linkingObjectIdentifierValue"] == f"item:{item.id}"
            for e in events
        )


def test_current_or_all_versions_one_item_and_a_run(restored, tmp_path):
    settings = restored
    register(settings, checkpoint(tmp_path, "v2", 2))
    from flows.reprocess import reprocess_collection

    reprocess_collection("letters", "restore-unet@v2", settings=settings)  # v2 beside v1, not current
    first = catalogued(settings)[0][0]
    current, every = tmp_path / "current", tmp_path / "all"
    assert cli(settings, "export-bag", "--item", str(first.id), "--out", str(current)) == 0
    assert cli(settings, "export-bag", "--item", str(first.id), "--out", str(every), "--versions", "all") == 0
    assert {p.split("/")[3] for p in files_of(current) if "/restored/" in p} == {"v1"}
    assert {p.split("/")[3] for p in files_of(every) if "/restored/" in p} == {"v1", "v2"}
    assert {p.split("/")[1] for p in files_of(every)} == {str(first.id)}  # one item
    with sessions_for(settings.db.url)() as s:
        run_id = s.scalars(select(Derivative.run_id).where(Derivative.version == 2)).first()
    by_run = tmp_path / "run"
    assert cli(settings, "export-bag", "--run", str(run_id), "--out", str(by_run), "--versions", "all") == 0
    assert bagit.Bag(str(by_run)).info["Payload-Items"] == "3"


def test_a_changed_file_is_left_out_and_counted_and_an_existing_folder_is_refused(restored, tmp_path, capsys):
    settings = restored
    item, [d] = catalogued(settings)[0]
    out_store = open_store(settings.store.output, settings.store)
    key = d.storage_uri.removeprefix(out_store.uri + "/")
    path = Path(settings.store.output.removeprefix("file://")) / key
    path.write_bytes(path.read_bytes() + b"tampered")  # bit rot, or a hand that should not have
    out = tmp_path / "bag"
    assert cli(settings, "export-bag", "--collection", "letters", "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert "left out" in err and key in err and "FixityError" in err
    bagit.Bag(str(out)).validate()  # still a whole, valid bag: without the file
    assert not (out / "data" / "letters" / str(item.id) / "restored" / "v1" / key.rsplit("/", 1)[1]).exists()

    marker = out / "bagit.txt"
    before = marker.read_bytes()
    assert cli(settings, "export-bag", "--collection", "letters", "--out", str(out)) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0]
    assert marker.read_bytes() == before
    assert cli(settings, "export-bag", "--collection", "nowhere", "--out", str(tmp_path / "x")) != 0
    assert "no collection 'nowhere'" in capsys.readouterr().err


def test_masters_in_s3_export_like_masters_in_a_folder(settings, tmp_path, s3_settings, bucket, monkeypatch):
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.store = s3_settings.model_copy(update={"output": f"s3://{bucket}/output"})
    settings.restore = settings.restore.model_copy(update={"tile": 64, "threads": 2})
    source = open_store(f"s3://{bucket}/scans", s3_settings)
    for key, make in MASTERS.items():
        source.put(key, make())
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    ingest_collection(f"s3://{bucket}/scans", "letters", settings)
    restore_collection("letters", settings=settings)
    out = tmp_path / "bag"
    from flows.export import export_bag

    summary = export_bag(settings, out, collection="letters", masters=True)
    assert summary.items == 3 and not summary.failed
    bagit.Bag(str(out)).validate()
    masters = sorted(p.name for p in (out / "data").rglob("master/*"))
    assert masters == sorted(k.rsplit("/", 1)[1] for k in MASTERS)
    assert (
        len([p for p in files_of(out) if "/restored/v1/" in p]) == 3 * 5
    )  # image, access, mask, pyramid, sidecar
