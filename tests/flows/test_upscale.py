"""Enlarging a catalogued collection through the real Prefect engine: versions of kind
``upscaled:x2`` twice the size of their parent, in its mode and bit depth, with its ICC profile
and twice its DPI, disclosed as AI-enlarged, with the model's digest in the sidecar; from the
master too; one-line refusals; and a checkpoint in Real-ESRGAN's published layout, imported and
run on files."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from sqlalchemy import select

from archive_db.models import Event, ModelVersion
from flows.cli.main import main as archive
from flows.db import sessions_for
from flows.model_versions import register
from flows.reprocess import promote, reprocess_collection, rollback
from flows.upscale import upscale_collection
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model
from tests.flows.test_restore import ENHANCED, checkpoint, stored, xmp_source_type
from tests.flows.test_stylize import current_restored, restored, rows, sidecar  # noqa: F401 (a fixture)
from tests.restoration.test_archs import realesr_general_x4v3_layout

pytestmark = pytest.mark.usefixtures("prefect_harness")


def enlarger(tmp_path, version: str = "t1", scale: int = 2, name: str = "enlarge-x2"):
    torch.manual_seed(0)
    model = create_model("srvgg_compact", num_feat=8, num_conv=2, upscale=scale)
    return save_checkpoint(
        model,
        tmp_path / f"{name}-{version}",
        {
            "architecture": "srvgg_compact",
            "config": {"num_feat": 8, "num_conv": 2, "upscale": scale},
            "name": name,
            "version": version,
            "task": "upscale",
        },
    ), tmp_path / f"{name}-{version}"


def decoded(data: bytes) -> np.ndarray:
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return tifffile.imread(io.BytesIO(data))
    return np.asarray(Image.open(io.BytesIO(data)))


def test_upscale_versions_each_restored_item_twice_the_size_with_its_provenance(restored, tmp_path):  # noqa: F811
    settings = restored
    card, folder = enlarger(tmp_path)
    register(settings, folder, status="production")
    summary = upscale_collection("letters", 2, settings=settings)
    assert (summary.selected, summary.restored, summary.failed) == (5, 5, 0)
    assert "Enlarged 5 of 5" in summary.headline() and ("enlarged", "5") in summary.rows()
    assert summary.markdown().startswith("# Enlargement of `letters`")
    made, parents = rows(settings, "upscaled:x2"), current_restored(settings)
    assert len(made) == 5
    with sessions_for(settings.db.url)() as s:
        model = s.scalars(select(ModelVersion).where(ModelVersion.name == "enlarge-x2")).one()
        events = s.scalars(select(Event).where(Event.type == "enlargement")).all()
        assert model.task == "upscale" and len(events) == 5 and {e.outcome for e in events} == {"success"}
    for d in made:
        parent = parents[d.item_id]
        assert d.parent_id == parent.id and d.model_version_id == model.id and d.is_current
        before, after = (
            decoded(stored(settings, parent.storage_uri)),
            decoded(stored(settings, d.storage_uri)),
        )
        assert after.shape == (2 * before.shape[0], 2 * before.shape[1], *before.shape[2:])
        assert after.dtype == before.dtype  # 16-bit stays 16-bit, grey stays grey, RGBA keeps alpha
        meta = sidecar(settings, d)
        assert (
            meta["parent"]["sha256"] == parent.sha256
            and meta["model"]["weights_sha256"] == card["weights_sha256"]
        )
        assert meta["parameters"] == {"scale": 2, "from": "restored"} and meta["seed"] == 0
        assert meta["disclosure"]["label"].startswith("AI-enlarged") and meta["disclosure"]["ai"]
        assert "mask.png" not in meta["derivative"]["files"]  # an enlarger finds no damage
        assert meta["code_version"]
    png = next(d for d in made if d.storage_uri.endswith(".png") and "rgb-icc" in d.storage_uri)
    img, parent = (
        Image.open(io.BytesIO(stored(settings, x.storage_uri))) for x in (png, parents[png.item_id])
    )
    assert img.info["icc_profile"] == parent.info["icc_profile"]
    assert img.info["dpi"] == pytest.approx((1200, 1200), abs=0.01)  # printed at the original's size
    assert xmp_source_type(img.info["xmp"]) == ENHANCED
    xmp = img.info["xmp"].decode() if isinstance(img.info["xmp"], bytes) else img.info["xmp"]
    assert "enlarge x2 with enlarge-x2@t1" in xmp  # the XMP history says what made it, from what
    again = upscale_collection("letters", 2, settings=settings)
    assert again.selected == 0 and len(rows(settings, "upscaled:x2")) == 5


def test_upscale_cli_from_the_master_and_its_one_line_refusals(restored, tmp_path, capsys):  # noqa: F811
    settings = restored
    base = ["--db", settings.db.url, "--output", settings.store.output]
    code = archive([*base, "upscale", "--collection", "letters"])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "no production enlarger x2" in err and len(err.splitlines()) == 1
    register(settings, enlarger(tmp_path)[1], status="production")
    for args, message in [
        (["--collection", "nope"], "no collection 'nope'"),
        (["--collection", "letters", "--scale", "3"], "'3' is not one of '2', '4'"),
        (["--collection", "letters", "--model", "restore-unet@v1"], "is a restore model, not an enlarger"),
        (["--collection", "letters", "--scale", "4", "--model", "enlarge-x2@t1"], "enlarges x2, not x4"),
    ]:
        code = archive([*base, "upscale", *args])
        err = capsys.readouterr().err.strip()
        assert code != 0 and message in err and len(err.splitlines()) == 1, (args, err)
    code = archive([*base, "restore", "--collection", "letters", "--model", "enlarge-x2@t1"])
    assert code != 0 and "is a upscale model, not a restorer" in capsys.readouterr().err
    assert archive([*base, "upscale", "--collection", "letters", "--from", "master", "--limit", "2"]) == 0
    assert "Enlarged 2 of 2" in capsys.readouterr().out
    made = rows(settings, "upscaled:x2")
    assert len(made) == 2 and all(d.parent_id is None for d in made)


def test_stale_enlargements_are_made_again_then_promoted(restored, tmp_path, capsys):  # noqa: F811
    settings = restored
    base = ["--db", settings.db.url, "--output", settings.store.output]
    register(settings, enlarger(tmp_path)[1], status="production")
    upscale_collection("letters", 2, settings=settings)
    assert archive([*base, "reprocess", "--collection", "letters", "--scale", "2"]) == 0
    assert "0 of 0" in capsys.readouterr().out or not [
        d for d in rows(settings, "upscaled:x2") if d.version > 1
    ]
    # a newer restored version becomes current: the enlargements made from the old one are stale
    register(settings, checkpoint(tmp_path, "v2", 2))
    reprocess_collection("letters", "restore-unet@v2", settings=settings)
    assert promote(settings, "letters", "restore-unet@v2") == 5
    assert archive([*base, "reprocess", "--collection", "letters", "--scale", "2"]) == 0
    out = capsys.readouterr().out
    assert "archive promote --collection letters --model enlarge-x2@t1" in out
    parents = current_restored(settings)
    new = [d for d in rows(settings, "upscaled:x2") if d.version == 2]
    assert len(new) == 5 and all(not d.is_current and d.parent_id == parents[d.item_id].id for d in new)
    assert archive([*base, "promote", "--collection", "letters", "--model", "enlarge-x2@t1"]) == 0
    assert "5 item(s)" in capsys.readouterr().out
    assert sorted(d.version for d in rows(settings, "upscaled:x2") if d.is_current) == [2] * 5
    assert rollback(settings, "letters", "enlarge-x2@t1") == 5
    assert sorted(d.version for d in rows(settings, "upscaled:x2") if d.is_current) == [1] * 5
    assert reprocess_collection("letters", settings=settings, scale=2).summary.selected == 0  # nothing stale
    for args, message in [
        (["--scale", "2", "--style", "albumen"], "give one of --style and --scale"),
        (["--scale", "2", "--model", "restore-unet@v2"], "is a restore model, not an enlarger"),
        ([], "give one of --model, --style and --scale"),
    ]:
        assert archive([*base, "reprocess", "--collection", "letters", *args]) != 0
        err = capsys.readouterr().err.strip()
        assert message in err, (args, err)


def test_a_real_esrgan_checkpoint_is_imported_and_enlarges_files_x4(settings, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    base = ["--db", settings.db.url, "--output", settings.store.output]
    torch.save(realesr_general_x4v3_layout(), tmp_path / "realesr-general-x4v3.pth")
    command = [*base, "models", "import", str(tmp_path / "realesr-general-x4v3.pth")]
    command += ["--architecture", "srvgg_compact", "--name", "realesr-general", "--version", "x4v3"]
    code = archive([*command, "--arch-config", '{"num_conv": 16, "upscale": 4}'])  # not its layout
    err = capsys.readouterr().err.strip()
    assert code != 0 and "not a srvgg_compact checkpoint" in err and len(err.splitlines()) == 1
    code = archive([*command, "--arch-config", '{"num_conv": 32, "upscale": 4}', "--promote"])
    assert code == 0, capsys.readouterr().err
    assert "registered realesr-general@x4v3 (upscale, production)" in capsys.readouterr().out
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(
        tmp_path / "small.png", dpi=(300, 300)
    )
    (tmp_path / "bad.png").write_bytes(b"not an image")
    files = [str(tmp_path / "small.png"), str(tmp_path / "bad.png")]
    code = archive([*base, "upscale-files", *files, "--scale", "4", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 1 and "failed" in captured.err and "bad.png" in captured.err  # the rest went on
    out = Image.open(tmp_path / "out" / "small.png")
    assert (
        out.size == (96, 80)
        and out.mode == "RGB"
        and out.info["dpi"] == pytest.approx((1200, 1200), abs=0.01)
    )
    recipe = json.loads((tmp_path / "out" / "small.recipe.json").read_text())
    assert (
        recipe["model"] == "realesr-general@x4v3"
        and recipe["scale"] == 4
        and len(recipe["weights_sha256"]) == 64
    )


def test_the_iiif_manifest_gives_an_enlargement_its_own_size(restored, tmp_path):  # noqa: F811
    import urllib.request

    from archive_db.models import Item
    from archive_db.web.app import create_app
    from flows.media import StoreMedia
    from tests.services import serving

    settings = restored
    settings.web = settings.web.model_copy(update={"iiif_cache": str(tmp_path / "iiif")})
    register(settings, enlarger(tmp_path)[1], status="production")
    upscale_collection("letters", 2, settings=settings)
    with sessions_for(settings.db.url)() as s:
        item = s.scalar(select(Item.id).where(Item.source_key == "box1/rgb-icc.png"))
    with serving(create_app(sessions_for(settings.db.url), StoreMedia(settings), None)) as host:
        manifest = json.loads(
            urllib.request.urlopen(f"http://{host}/iiif/presentation/items/{item}/manifest.json").read()
        )
        [canvas] = manifest["items"]
        layers = canvas["items"][0]["items"][0]["body"]["items"]
        [enlarged] = [b for b in layers if "upscaled:x2" in b["label"]["en"][0]]
        assert enlarged["label"]["en"][0].startswith("AI-enlarged")
        assert (
            (enlarged["width"], enlarged["height"])
            == (2 * canvas["width"], 2 * canvas["height"])
            == (240, 180)
        )
        info = json.loads(urllib.request.urlopen(enlarged["service"][0]["id"] + "/info.json").read())
        assert (info["width"], info["height"]) == (enlarged["width"], enlarged["height"])


def test_an_enlargement_over_the_pixel_limit_fails_alone_and_is_counted(restored, tmp_path):  # noqa: F811
    from archive_db.models import Item

    settings = restored
    register(settings, enlarger(tmp_path)[1], status="production")
    with sessions_for(settings.db.url)() as s:
        sizes = {i.id: (i.width or 0) * (i.height or 0) for i in s.scalars(select(Item))}
    limit = 2 * max(sizes.values())  # every parent decodes; the larger ones' enlargements are over it
    settings.ingest = settings.ingest.model_copy(update={"max_pixels": limit})
    summary = upscale_collection("letters", 2, settings=settings)
    over = {i for i, px in sizes.items() if 4 * px > limit}
    assert summary.failed == len(over) >= 1 and summary.restored == summary.selected - len(over) >= 1
    assert all("over the archive's pixel limit" in reason for _, reason in summary.problems), summary.problems
    assert {d.item_id for d in rows(settings, "upscaled:x2")}.isdisjoint(over)
