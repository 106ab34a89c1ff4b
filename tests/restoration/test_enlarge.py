"""The enlarger (super-resolution): its training pairs (a seeded second-order degradation, plain
bicubic for a share), SRGAN-style training whose loss falls and resumes exactly, and a trained
checkpoint through the engine, tiled, equal to one pass over the whole image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from restoration.checkpoints import load_checkpoint
from restoration.degrade.enlarge import PRESETS, EnlargeDegradation, apply_plan, make_small, sample_plan
from restoration.engine import EngineConfig, Restorer
from restoration.factory import create_model
from restoration.stage_training import StageConfig, StageTrainer, batch_maker, export

TINY = {"architecture": "srvgg_compact", "arch_config": {"num_feat": 8, "num_conv": 2, "upscale": 2}}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    from restoration.data import TRAIN_IMAGES, bundled_images

    return list(bundled_images(TRAIN_IMAGES[:3]).values())


def test_small_copies_are_seeded_exact_in_size_8_bit_and_recorded():
    large = torch.rand(6, 3, 64, 64)
    config = EnlargeDegradation(scale=2, plain=0.3)
    a, plans = make_small(large, np.random.default_rng(5), config)
    b, again = make_small(large, np.random.default_rng(5), config)
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, b) and plans == again
    assert torch.equal(a, (a * 255).round() / 255)  # quantised, as a scan is
    json.dumps(plans)  # provenance: JSON-safe
    for i, plan in enumerate(plans):  # a recorded plan replays exactly
        assert torch.equal(apply_plan(large[i : i + 1], plan), a[i : i + 1])
    drawn = [sample_plan(np.random.default_rng(i), 96, EnlargeDegradation(scale=4)) for i in range(300)]
    plain = [p for p in drawn if p == [{"op": "resize", "size": 24, "mode": "bicubic"}]]
    assert 0.12 < len(plain) / len(drawn) < 0.28  # the plain bicubic share (0.2)
    ops = {s["op"] for p in drawn for s in p}
    assert ops == {"resize", "gaussian_blur", "gaussian_noise", "poisson_noise", "film_grain", "jpeg"}
    assert all(p[-1]["op"] in ("resize", "jpeg") and any(s.get("size") == 24 for s in p[-2:]) for p in drawn)
    with pytest.raises(ValueError, match="scale is 2 or 4"):
        EnlargeDegradation(scale=3)


def test_the_scans_preset_draws_within_what_real_small_scans_hold():
    config = EnlargeDegradation(**({"scale": 2, "plain": 0.0} | PRESETS["scans"]))
    drawn = [s for i in range(400) for s in sample_plan(np.random.default_rng(i), 96, config)]
    by_op = {op: [s for s in drawn if s["op"] == op] for op in ("jpeg", "gaussian_noise", "poisson_noise")}
    assert all(len(steps) > 20 for steps in by_op.values())
    assert min(s["quality"] for s in by_op["jpeg"]) >= 60  # Real-ESRGAN's ranges go down to 40
    assert max(s["sigma"] for s in by_op["gaussian_noise"]) <= 6 / 255  # theirs to 15/255
    assert min(s["photons"] for s in by_op["poisson_noise"]) >= 1000
    heavy = [s for i in range(400) for s in sample_plan(np.random.default_rng(i), 96, EnlargeDegradation())]
    assert min(s["quality"] for s in heavy if s["op"] == "jpeg") < 50  # the default keeps its ranges
    from flows.cli.stages import train_upscale  # the CLI offers every preset (without loading torch)

    assert set(next(p for p in train_upscale.params if p.name == "degradation").type.choices) == set(PRESETS)


def test_an_enlarger_trains_with_falling_loss_goes_adversarial_resumes_exactly_and_exports(images, tmp_path):
    config = StageConfig(
        stage="upscale",
        **TINY,
        steps=40,
        batch=4,
        crop=48,
        lr=3e-3,
        val_crops=1,
        val_crop=64,
        workers=0,
        adv_weight=0.01,
        warmup_steps=30,
        disc_config={"ndf": 8, "n_layers": 2},
    )
    straight = StageTrainer(config, images, images, log=lambda _: None)
    make = batch_maker(config, images)
    fixed = make(10**6)
    before = straight.loss(straight.net, fixed)[0].item()
    straight.run(tmp_path / "a", state_every=10)
    late = straight.history[-1]
    assert "g_adv" in late and "d" in late  # the discriminator joined after warm-up
    StageTrainer(config, images, images, log=lambda _: None).run(tmp_path / "b", until=33)
    resumed = StageTrainer(config, images, images, log=lambda _: None)
    resumed.run(tmp_path / "b")
    assert resumed.step == 40
    for name in ("ema", "d"):
        want, got = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for k, v in want.items():
            assert torch.allclose(v, got[k], atol=1e-5), (name, k)
    straight.d = None  # the loss alone: a discriminator's forward would move its spectral norm's state
    after = straight.loss(straight.net, fixed)[0].item()
    assert after < 0.8 * before, (before, after)
    metrics = straight.validate()
    assert set(metrics) == {"psnr", "ssim", "bicubic_psnr"}
    card = export(straight, tmp_path / "ckpt", {"name": "enlarge-x2", "version": "t1", "metrics": metrics})
    assert card["task"] == "upscale" and card["scale"] == 2 and card["degradation"]["plain"] == 0.2
    assert "holes" not in card["training"] and card["training"]["warmup_steps"] == 30  # its own fields
    model, _ = load_checkpoint(tmp_path / "ckpt")
    assert model.scale == 2


@pytest.mark.parametrize(
    "arch, config, size",
    [
        ("srvgg_compact", {"num_feat": 8, "num_conv": 3, "upscale": 2}, (90, 110)),
        ("rrdbnet", {"num_feat": 8, "num_block": 1, "num_grow_ch": 4, "scale": 2}, (91, 109)),  # odd sides
    ],
)
def test_a_trained_enlarger_tiled_equals_one_pass_and_finds_no_damage(arch, config, size):
    torch.manual_seed(0)
    model = create_model(arch, **config).eval()
    from skimage import data

    photo = np.ascontiguousarray(data.astronaut()[::4, ::4][: size[0], : size[1]])
    tiled = Restorer(model, EngineConfig(tile=48, overlap=16)).restore([photo])[0]
    with torch.no_grad():
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
        whole = (model(x).clamp(0, 1)[0].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
    assert tiled.image.shape == (2 * size[0], 2 * size[1], 3) and tiled.mask is None
    diff = np.abs(tiled.image.astype(int) - whole.astype(int))
    assert diff.max() <= 1, diff.max()


def test_the_cli_trains_an_enlarger_whose_checkpoint_registers_as_an_upscale_model(
    settings, tmp_path, monkeypatch, capsys
):
    from flows.cli.main import main

    monkeypatch.setattr("flows.model_versions.SHIPPED", tmp_path / "no-shipped-models")
    args = ["train", "upscale", "--out", str(tmp_path / "x2"), "--steps", "3", "--warmup-steps", "2"]
    args += ["--architecture", "srvgg_compact"]
    args += ["--batch", "2", "--crop", "32", "--workers", "0", "--no-photos", "--device", "cpu"]
    assert main([*args, "--arch-config", json.dumps(TINY["arch_config"] | {"upscale": 4})]) == 1  # not x2
    assert "upscale is 4, not the scale 2" in capsys.readouterr().err
    assert main([*args, "--arch-config", json.dumps(TINY["arch_config"])]) == 0
    card = json.loads((tmp_path / "x2" / "card.json").read_text())
    assert card["degradation"]["jpeg_quality"] == [60, 95]  # the scans preset by default, recorded
    assert (card["task"], card["scale"], card["name"], card["config"]["upscale"]) == (
        "upscale",
        2,
        "enlarge-x2",
        2,
    )
    assert card["training"]["adv_weight"] == 0.005 and card["sessions"][0]["to_step"] == 3
    assert card["how"]["command"].startswith("archive ") and card["degradation"]["digest"]
    base = ["--db", settings.db.url, "--output", settings.store.output]
    assert main([*base, "models", "register", str(tmp_path / "x2")]) == 0


def test_a_lent_gpu_trains_an_enlarger_for_a_fixed_time(tmp_path):
    """restoration.device_train --stage upscale (what a lent GPU runs, with only restoration/)."""
    from restoration.device_train import main

    rng = np.random.default_rng(0)
    pictures = {f"train/p{i}": rng.integers(0, 256, (80, 80, 3), dtype=np.uint8) for i in range(2)}
    np.savez_compressed(tmp_path / "photos.npz", **pictures, **{"val/v": pictures["train/p0"]})
    args = [
        "train",
        "--stage",
        "upscale",
        "--images",
        str(tmp_path / "photos.npz"),
        "--out",
        str(tmp_path / "x2"),
    ]
    args += ["--state", str(tmp_path / "state"), "--seconds", "4", "--steps", "100000", "--batch", "2"]
    args += ["--crop", "32", "--workers", "0", "--arch-config", '{"num_feat": 8, "num_conv": 2}']
    main([*args, "--code-version", "0.1.0+gtest"])
    model, card = load_checkpoint(tmp_path / "x2")
    assert model.scale == 2 and card["task"] == "upscale" and 0 < card["training"]["steps_done"] < 100000
    assert card["training"]["warmup_steps"] == 83000 and set(card["metrics"]) == {
        "psnr",
        "ssim",
        "bicubic_psnr",
    }
    assert card["degradation"]["jpeg_quality"] == [60, 95]  # the scans preset by default, as the CLI's
    # a fine-tune starts from an enlarger's checkpoint (its ``upscale`` attribute is its factor)
    again = [str(tmp_path / "x2b") if a == str(tmp_path / "x2") else a for a in args]
    main([*again, "--init", str(tmp_path / "x2"), "--code-version", "0.1.0+gtest"])
    _, card = load_checkpoint(tmp_path / "x2b")
    assert card["how"]["init"]["weights_sha256"] == load_checkpoint(tmp_path / "x2")[1]["weights_sha256"]
