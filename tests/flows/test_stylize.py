"""Styling a catalogued collection through the real Prefect engine: versions of kind
``style:<name>`` with their parent and recipe, re-runs that do nothing, a learned style from a
registered checkpoint, and restyling after a newer restored version, with promotion."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select

from archive_db.models import Derivative, Event, ModelVersion
from flows.cli.main import main as archive
from flows.db import sessions_for
from flows.ingest import ingest_collection
from flows.model_versions import register
from flows.reprocess import promote, reprocess_collection, rollback
from flows.restore import restore_collection
from flows.stylize import stylize_collection
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model
from tests.flows.test_ingest import write_folder
from tests.flows.test_restore import MASTERS, checkpoint, stored

pytestmark = pytest.mark.usefixtures("prefect_harness")


def rows(settings, kind: str) -> list[Derivative]:
    with sessions_for(settings.db.url)() as s:
        found = s.scalars(
            select(Derivative).where(Derivative.kind == kind).order_by(Derivative.item_id, Derivative.version)
        ).all()
        s.expunge_all()
        return list(found)


def sidecar(settings, d: Derivative) -> dict:
    prefix = d.storage_uri.rsplit("/", 1)[0].removeprefix(d.storage_uri.split("/derivatives/")[0] + "/")
    return json.loads(stored(settings, f"{prefix}/metadata.json"))


def current_restored(settings) -> dict[int, Derivative]:
    return {d.item_id: d for d in rows(settings, "restored") if d.is_current}


@pytest.fixture
def restored(settings, tmp_path, monkeypatch):
    """test_restore's collection (grey, RGB, 16-bit, RGBA masters; one quarantined), restored."""
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    settings.restore = settings.restore.model_copy(update={"batch_pixels": 60_000, "tile": 64, "threads": 2})
    register(settings, checkpoint(tmp_path, "v1", 1), status="production")
    write_folder(tmp_path / "inbox", {k: make() for k, make in MASTERS.items()})
    ingest_collection(str(tmp_path / "inbox"), "letters", settings)
    restore_collection("letters", settings=settings)
    return settings


def test_stylize_versions_each_restored_item_with_its_parent_and_recipe(restored):
    settings = restored
    summary = stylize_collection("letters", "albumen", strength=0.9, settings=settings)
    assert (summary.selected, summary.restored, summary.failed) == (5, 5, 0)
    styled, parents = rows(settings, "style:albumen"), current_restored(settings)
    assert len(styled) == 5
    with sessions_for(settings.db.url)() as s:
        preset = s.scalars(select(ModelVersion).where(ModelVersion.name == "preset:albumen")).one()
        assert (preset.task, preset.architecture, preset.status) == ("style", "preset", "production")
    for d in styled:
        assert d.version == 1 and d.is_current and d.parent_id == parents[d.item_id].id
        assert d.model_version_id == preset.id
        meta = sidecar(settings, d)
        assert (
            meta["parent"]["derivative_id"] == d.parent_id
            and meta["parent"]["sha256"] == parents[d.item_id].sha256
        )
        assert meta["recipe"]["hash"] == d.recipe_hash and meta["parameters"]["style"] == "albumen"
        assert meta["parameters"]["strength"] == 0.9 and meta["parameters"]["params"]["foxing"] == 0.08
        assert meta["model"]["weights_sha256"] == preset.weights_sha256
        assert meta["disclosure"] == {  # a fixed recipe of curves and grain: algorithmic, not AI
            "digital_source_type": "http://cv.iptc.org/newscodes/digitalsourcetype/algorithmicallyEnhanced",
            "label": "Algorithmically styled (preset, not AI)",
            "ai": False,
        }
        assert "mask.png" not in meta["derivative"]["files"]
        assert hashlib.sha256(stored(settings, d.storage_uri)).hexdigest() == d.sha256
    with sessions_for(settings.db.url)() as s:
        events = s.scalars(select(Event).where(Event.type == "style transfer")).all()
        assert len(events) == 5 and all(e.outcome == "success" and e.detail["parent_id"] for e in events)
    again = stylize_collection("letters", "albumen", strength=0.9, settings=settings)
    assert again.selected == 0 and len(rows(settings, "style:albumen")) == 5  # a re-run is a no-op


def test_stylize_from_the_master_and_a_16_bit_master_stays_16_bit(restored):
    import tifffile

    settings = restored
    stylize_collection("letters", "cyanotype", source="master", settings=settings)
    styled = rows(settings, "style:cyanotype")
    assert len(styled) == 5 and all(d.parent_id is None for d in styled)
    tiffs = [d for d in styled if d.storage_uri.endswith(".tif")]
    assert len(tiffs) == 2  # grey16.tif and rgb16.tif
    import io

    for d in tiffs:
        px = tifffile.imread(io.BytesIO(stored(settings, d.storage_uri)))
        assert px.dtype == np.uint16 and px.ndim == 3 and px.shape[2] == 3  # grey comes out in colour


def test_a_learned_style_and_restyling_after_a_new_restored_version(restored, tmp_path):
    settings = restored
    net = create_model("style_net_test")
    for name, p in net.named_parameters():
        if name.startswith("head"):
            p.data.normal_(std=0.05)
    net.tones.copy_(torch.linspace(0.05, 0.8, net.tones.shape[1]).expand(2, -1))  # its exemplars' tones
    save_checkpoint(
        net,
        tmp_path / "tiny-styles",
        {
            "architecture": "style_net",
            "config": {"n_styles": 2, "base": 8, "blocks": 1},
            "name": "tiny-styles",
            "version": "v1",
            "task": "style",
            "styles": ["blue", "brown"],
            "metrics": {},
        },
    )
    register(settings, tmp_path / "tiny-styles", status="production")
    summary = stylize_collection("letters", "learned:tiny-styles@v1:brown", settings=settings)
    assert summary.restored == 5
    learned = rows(settings, "style:tiny-styles.brown")
    assert len(learned) == 5
    meta = sidecar(settings, learned[0])
    composite = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
    assert meta["disclosure"] == {"digital_source_type": composite, "label": "AI-styled", "ai": True}
    from tests.flows.test_restore import xmp_source_type

    png = next(d for d in learned if d.storage_uri.endswith(".png"))
    image = Image.open(io.BytesIO(stored(settings, png.storage_uri)))
    access = Image.open(io.BytesIO(stored(settings, png.storage_uri.rsplit("/", 1)[0] + "/access.jpg")))
    assert xmp_source_type(image.info["xmp"]) == xmp_source_type(access.info["xmp"]) == composite
    assert meta["parameters"]["style"] == "brown" and meta["parameters"]["params"] == {
        "tone": 1.0
    }  # printed to its tones
    assert set(meta["derived"]["print_curve"]) == {
        "gamma",
        "gain",
        "lift",
        "amount",
    }  # the curve this image got

    stylize_collection("letters", "albumen", settings=settings)
    register(settings, checkpoint(tmp_path, "v2", 2))
    reprocess_collection("letters", "restore-unet@v2", settings=settings)
    assert promote(settings, "letters", "restore-unet@v2") == 5  # a newer restored version is current
    report = reprocess_collection("letters", settings=settings, style="albumen")
    assert report.summary.restored == 5 and len(report.changes) == 5
    styled, parents = rows(settings, "style:albumen"), current_restored(settings)
    new = [d for d in styled if d.version == 2]
    assert len(new) == 5 and all(not d.is_current and d.parent_id == parents[d.item_id].id for d in new)
    assert promote(settings, "letters", "preset:albumen@v1", "style:albumen") == 5
    assert sorted(d.version for d in rows(settings, "style:albumen") if d.is_current) == [2] * 5
    assert rollback(settings, "letters", "preset:albumen@v1", "style:albumen") == 5
    assert sorted(d.version for d in rows(settings, "style:albumen") if d.is_current) == [1] * 5
    # v2 exists for the current parent: the rollback was a choice, not work left to do
    assert reprocess_collection("letters", settings=settings, style="albumen").summary.selected == 0


def test_stylize_cli_refuses_bad_arguments_in_one_line(restored, capsys):
    settings = restored
    base = ["--db", settings.db.url, "--output", settings.store.output]
    for args, message in [
        (["--collection", "letters", "--style", "sepia-ish"], "unknown style 'sepia-ish'"),
        (["--collection", "nope", "--style", "albumen"], "no collection 'nope'"),
        (["--collection", "letters", "--style", "learned:nothing@v9"], "no model version matches"),
        (["--collection", "letters", "--style", "learned:restore-unet@v1"], "not a style"),
        (["--collection", "letters", "--style", "albumen", "--param", "foxing=lots"], "could not convert"),
    ]:
        code = archive([*base, "stylize", *args])
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and len(err.splitlines()) == 1, (args, err)


def test_stylize_cli_end_to_end(restored, capsys):
    settings = restored
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert (
        archive([*base, "stylize", "--collection", "letters", "--style", "kodachrome", "--limit", "2"]) == 0
    )
    assert "Styled 2 of 2" in capsys.readouterr().out
    assert len(rows(settings, "style:kodachrome")) == 2
    assert archive([*base, "search", "--status", "styled", "--json", "--no-facets"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert len(hits) == 2 and all(h["styled"] and h["restored"] for h in hits)
