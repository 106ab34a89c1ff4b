"""The model registry: register with digest checks, promote, retire, resolve, load from the store."""

from __future__ import annotations

import json

import pytest
import torch

from flows.errors import ConfigError, NotFound
from flows.model_versions import load, ready, register, set_status
from restoration.checkpoints import save_checkpoint
from restoration.factory import create_model


def checkpoint(tmp_path, version: str, name: str = "restore-unet"):
    torch.manual_seed(len(version))
    model = create_model("unet_restorer_test")
    torch.nn.init.normal_(model.image_head.weight, std=0.01)
    return save_checkpoint(
        model,
        tmp_path / f"{name}-{version}",
        {
            "architecture": "unet_restorer",
            "config": {"base": 8, "depth": 2},
            "name": name,
            "version": version,
            "task": "restore",
            "metrics": {"model_psnr": 25.0},
        },
    )


@pytest.fixture
def registry(settings, tmp_path, monkeypatch):
    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    checkpoint(tmp_path, "v1")
    checkpoint(tmp_path, "v2")
    return settings, tmp_path


def test_register_promote_resolve_and_load(registry):
    settings, tmp = registry
    register(settings, tmp / "restore-unet-v1", status="production")
    register(settings, tmp / "restore-unet-v2")
    model, card, row = load(settings, "restore@production")
    assert (row.version, row.status) == ("v1", "production") and card["version"] == "v1"
    assert load(settings, "restore-unet@v2")[2].version == "v2"
    set_status(settings, "restore-unet@v2", "production")
    assert load(settings, "restore@production")[2].version == "v2"  # v1 went back to candidate
    set_status(settings, "restore-unet@v2", "retired")
    with pytest.raises(NotFound, match="no model version matches 'restore@production'"):
        load(settings, "restore@production")
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        assert model(x)[0].shape == x.shape


def test_weights_are_read_from_where_they_were_registered_not_todays_output_store(registry, tmp_path):
    settings, tmp = registry
    row = register(settings, tmp / "restore-unet-v1", status="production")
    moved = settings.model_copy(
        update={"store": settings.store.model_copy(update={"output": str(tmp_path / "new-store")})}
    )
    model, card, again = load(moved, "restore-unet@v1")  # the new output store holds no models
    assert again.weights_uri == row.weights_uri and card["version"] == "v1"


def test_versions_are_immutable_and_digests_checked(registry):
    settings, tmp = registry
    register(settings, tmp / "restore-unet-v1")
    with pytest.raises(ConfigError, match="already registered"):
        register(settings, tmp / "restore-unet-v1")
    card = json.loads((tmp / "restore-unet-v2" / "card.json").read_text())
    card["weights_sha256"] = "0" * 64
    (tmp / "restore-unet-v2" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match="does not match the card"):
        register(settings, tmp / "restore-unet-v2")


def test_a_tampered_stored_model_is_refused_on_load(registry):
    from restoration.checkpoints import ChecksumError

    settings, tmp = registry
    row = register(settings, tmp / "restore-unet-v1", status="production")
    stored = row.weights_uri.removeprefix("file://")
    data = bytearray(open(stored, "rb").read())
    data[-5] ^= 0xFF
    open(stored, "wb").write(bytes(data))
    with pytest.raises(ChecksumError, match="does not match"):
        load(settings, "restore@production")


def test_models_cli(registry, capsys):
    from flows.cli.main import main

    settings, tmp = registry
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "models", "register", str(tmp / "restore-unet-v1"), "--promote"]) == 0
    assert main([*base, "models", "register", str(tmp / "restore-unet-v2")]) == 0
    assert main([*base, "models", "promote", "restore-unet@v2"]) == 0
    assert main([*base, "models", "retire", "restore-unet@v1"]) == 0
    capsys.readouterr()
    assert main([*base, "models", "list", "--json"]) == 0
    rows = {r["version"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert rows == {"v1": "retired", "v2": "production"}
    assert main([*base, "models", "promote", "restore-unet@v9"]) == 1
    assert "no model version matches" in capsys.readouterr().err


def test_shipped_checkpoints_are_registered_on_first_use(settings, tmp_path, monkeypatch):
    shipped = tmp_path / "weights"
    card = checkpoint(shipped / "restore-unet", "v1")
    (shipped / "restore-unet" / "restore-unet-v1").rename(shipped / "restore-unet" / "v1")
    (shipped / "shipped.json").write_text(
        json.dumps({"restore-unet/v1": "production"})
    )  # the release manifest
    monkeypatch.setattr("flows.model_versions.SHIPPED", shipped)
    with pytest.raises(NotFound):  # loading a model only reads: a worker never registers
        load(settings, "restore@production")
    ready(settings)  # the first use, at an edge (a command, a flow planning its work)
    _, _, row = load(settings, "restore@production")
    assert (row.name, row.version, row.weights_sha256) == ("restore-unet", "v1", card["weights_sha256"])

    # A later release ships v2 as production: this archive, which runs v1, gets v2 as a candidate
    # (to reprocess with and promote); a fresh archive starts on v2.
    checkpoint(shipped / "restore-unet", "v2")
    (shipped / "restore-unet" / "restore-unet-v2").rename(shipped / "restore-unet" / "v2")
    (shipped / "shipped.json").write_text(
        json.dumps({"restore-unet/v1": "candidate", "restore-unet/v2": "production"})
    )
    ready(settings)
    assert load(settings, "restore@production")[2].version == "v1"
    assert load(settings, "restore-unet@v2")[2].status == "candidate"
    fresh = settings.model_copy(
        update={
            "db": settings.db.model_copy(update={"url": f"sqlite:///{tmp_path}/fresh.db"}),
            "store": settings.store.model_copy(update={"output": (tmp_path / "fresh").as_uri()}),
        }
    )
    ready(fresh)
    statuses = {
        load(fresh, f"restore-unet@{v}")[2].version: load(fresh, f"restore-unet@{v}")[2].status
        for v in ("v1", "v2")
    }
    assert statuses == {"v1": "candidate", "v2": "production"}


def test_shipped_versions_are_registered_in_release_order_so_v10_is_newer_than_v9(
    settings, tmp_path, monkeypatch
):
    """A reprocess with a model redoes what versions registered before it made: on a fresh archive,
    v10 must be registered after v9 (a plain sort of the folders puts v10 first)."""
    shipped = tmp_path / "weights"
    for version in ("v10", "v2", "v9"):
        checkpoint(shipped / "restore-unet", version)
        (shipped / "restore-unet" / f"restore-unet-{version}").rename(shipped / "restore-unet" / version)
    (shipped / "shipped.json").write_text(
        json.dumps(
            {"restore-unet/v2": "retired", "restore-unet/v9": "production", "restore-unet/v10": "candidate"}
        )
    )
    monkeypatch.setattr("flows.model_versions.SHIPPED", shipped)
    ready(settings)
    ids = {v: load(settings, f"restore-unet@{v}")[2].id for v in ("v2", "v9", "v10")}
    assert ids["v2"] < ids["v9"] < ids["v10"]


def test_restore_files_keeps_names_sizes_modes_and_depth(registry, tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from flows.cli.main import main
    from flows.imaging.io import read_image
    from tests import samples

    settings, tmp = registry
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "models", "register", str(tmp / "restore-unet-v1"), "--promote"]) == 0
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "grey.png").write_bytes(samples.encode(samples.clean().convert("L").resize((70, 50)), "PNG"))
    (inbox / "photo.jpg").write_bytes(samples.jpeg((90, 60)))
    (inbox / "deep.tif").write_bytes(samples.gray16_tiff())
    (inbox / "colour16.tif").write_bytes(samples.rgb16_tiff())
    (inbox / "alpha.png").write_bytes(samples.encode(samples.clean().convert("RGBA").resize((40, 30)), "PNG"))
    (inbox / "broken.png").write_bytes(samples.truncated(samples.png()))
    files = sorted(str(p) for p in inbox.iterdir())
    code = main([*base, "restore-files", *files, "--out", str(tmp_path / "out"), "--masks", "--tile", "64"])
    assert code == 1  # broken.png failed, the rest were restored
    err = capsys.readouterr().err
    assert sum(line.startswith("failed ") for line in err.splitlines()) == 1 and "broken.png" in err, err
    for name in ("grey.png", "photo.jpg", "deep.tif", "colour16.tif", "alpha.png"):
        before, after = read_image(inbox / name), read_image(tmp_path / "out" / name)
        assert (after.mode, after.pixels.shape, after.pixels.dtype) == (
            before.mode,
            before.pixels.shape,
            before.pixels.dtype,
        ), name
        assert (tmp_path / "out" / f"{name.rsplit('.', 1)[0]}.mask.png").exists()
    deep = read_image(tmp_path / "out" / "colour16.tif").pixels
    assert deep.dtype == np.uint16 and len(np.unique(deep)) > 256  # really 16-bit, not 8-bit scaled up
    assert (
        Image.open(tmp_path / "out" / "alpha.png").getchannel("A").tobytes()
        == Image.open(inbox / "alpha.png").getchannel("A").tobytes()
    )


def pipeline_checkpoint(tmp_path, version: str = "v9"):
    """A tiny staged restorer (detect, inpaint; no denoise), assembled as a release would be."""
    from restoration.stages import assemble

    dirs = {}
    for stage, arch in (("detect", "damage_detector_test"), ("inpaint", "gated_inpainter_test")):
        dirs[stage] = tmp_path / f"stage-{stage}"
        save_checkpoint(create_model(arch), dirs[stage], {"architecture": arch, "config": {}})
    return assemble(dirs, tmp_path / f"restore-unet-{version}", {"name": "restore-unet", "version": version})


def test_restore_files_uses_a_curators_mask_and_records_it(registry, tmp_path, capsys):
    import hashlib

    import numpy as np
    from PIL import Image

    from flows.cli.main import main
    from tests import samples

    settings, tmp = registry
    base = ["--db", settings.db.url, "--output", settings.store.output]
    pipeline_checkpoint(tmp)
    assert main([*base, "models", "register", str(tmp / "restore-unet-v9"), "--promote"]) == 0
    inbox, masks = tmp_path / "in", tmp_path / "masks"
    inbox.mkdir(), masks.mkdir()
    photo = samples.clean().convert("RGB").resize((80, 60))
    for name in ("a.png", "b.png", "c.png"):
        photo.save(inbox / name)
    drawn = np.zeros((60, 80), np.uint8)
    drawn[20:26, 10:70] = 255  # the crack the detector missed, painted white
    Image.fromarray(drawn).save(masks / "a.mask.png")
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(
        masks / "c.png"
    )  # the wrong size: refused, in one line
    out = tmp_path / "out"
    code = main(
        [
            *base,
            "restore-files",
            *(str(inbox / n) for n in ("a.png", "b.png", "c.png")),
            "--out",
            str(out),
            "--mask-dir",
            str(masks),
            "--masks",
        ]
    )
    assert code == 1
    err = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert (
        err.count("failed ") == 1 and "c.png: ValueError: the supplied mask is 10x10, the image 80x60" in err
    )
    recipe = json.loads((out / "a.recipe.json").read_text())
    assert recipe["supplied_mask"] == {
        "file": "a.mask.png",
        "sha256": hashlib.sha256((masks / "a.mask.png").read_bytes()).hexdigest(),
    }
    assert (
        recipe["model"] == "restore-unet@v9"
        and json.loads((out / "b.recipe.json").read_text())["supplied_mask"] is None
    )
    restored, before = np.asarray(Image.open(out / "a.png")), np.asarray(photo)
    assert np.array_equal(
        np.asarray(Image.open(out / "a.mask.png")) > 127, drawn > 0
    )  # the mask used is saved
    outside = np.ones((60, 80), bool)
    outside[18:28, 8:72] = False  # the mask grown by the pipeline's 2 px
    assert np.array_equal(restored[outside], before[outside]) and not np.array_equal(
        restored[20:26, 10:70], before[20:26, 10:70]
    )
    assert main([*base, "models", "register", str(tmp / "restore-unet-v1")]) == 0
    assert (
        main(
            [
                *base,
                "restore-files",
                str(inbox / "a.png"),
                "--out",
                str(out),
                "--mask-dir",
                str(masks),
                "--model",
                "restore-unet@v1",
            ]
        )
        != 0
    )
    assert "restore-unet@v1 has no inpainting stage to use a supplied mask" in " ".join(
        capsys.readouterr().err.split()
    )
