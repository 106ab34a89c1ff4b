"""A few training steps on CPU lower the loss; training is reproducible and resumes exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restoration.checkpoints import load_checkpoint
from restoration.data import TRAIN_IMAGES, bundled_images, random_crops, training_batch
from restoration.losses import mask_loss, reconstruction
from restoration.stage_training import StageConfig
from restoration.training import TrainConfig, Trainer, export

TINY = dict(
    architecture="unet_restorer_test",
    discriminator="patchgan_test",
    disc_config={},
    batch=4,
    crop=48,
    warmup_steps=3,
    val_crops=1,
    val_crop=64,
    lr=1e-3,
)


@pytest.fixture(scope="module")
def images():
    imgs = bundled_images(TRAIN_IMAGES[:3])
    return [img[:160, :160] for img in imgs.values()]


def test_steps_lower_the_loss(images):
    """Gradients reach every loss: a few steps on one batch lower its reconstruction and mask losses."""
    # Adam moves each weight by about lr a step: few steps need a big lr
    trainer = Trainer(
        TrainConfig(**(TINY | {"steps": 80, "lr": 3e-3})), images, images[:1], log=lambda s: None
    )
    batch = training_batch(images, 0, 7, 4, 48, trainer.degradation)

    def losses() -> tuple[float, float]:
        with torch.no_grad():
            restored, logits = trainer.g(batch.degraded)
            return reconstruction(restored, batch.clean).item(), mask_loss(logits, batch.mask).item()

    rec0, mask0 = losses()
    steps = [trainer.train_step(batch) for _ in range(80)]
    rec1, mask1 = losses()
    assert rec1 < 0.9 * rec0 and mask1 < 0.9 * mask0, (rec0, rec1, mask0, mask1)
    assert "d" in steps[-1]  # past the warm-up the discriminator trains too


def test_augmented_crops_zoom_out_and_shuffle_colours():
    """Augmentation shows more of the scene in a crop (zoomed out) and new hues; it is seeded, and
    without it the crops are those the shipped models were trained on."""
    ramp = np.zeros((64, 64, 3), np.uint8)
    ramp[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]  # red rises left to right
    ramp[..., 2] = 90
    plain = random_crops([ramp], 24, 32, np.random.default_rng(3))
    again = random_crops([ramp], 24, 32, np.random.default_rng(3), augment=False)
    assert torch.equal(plain, again)
    augmented = random_crops([ramp], 24, 32, np.random.default_rng(3), augment=True)
    assert torch.equal(augmented, random_crops([ramp], 24, 32, np.random.default_rng(3), augment=True))
    assert augmented.shape == plain.shape

    def ramp_channel(crops: torch.Tensor) -> torch.Tensor:  # wherever the shuffle put red
        return (crops.amax((2, 3)) - crops.amin((2, 3))).argmax(1)

    def span(crops: torch.Tensor) -> torch.Tensor:  # the range of the ramp each crop covers
        values = crops[torch.arange(len(crops)), ramp_channel(crops)]
        return values.amax((1, 2)) - values.amin((1, 2))

    assert span(plain).max() < 0.52  # 32 of 64 columns: half the ramp at most
    assert span(augmented).mean() > span(plain).mean() + 0.15
    assert (span(augmented) > 0.6).any()  # some crops see most of the image
    assert set(ramp_channel(plain).tolist()) == {0}
    assert len(set(ramp_channel(augmented).tolist())) >= 2  # the shuffles moved red elsewhere


def test_a_larger_zoom_shows_more_of_the_scene_in_each_crop_and_the_default_draws_as_before():
    ramp = np.zeros((256, 256, 3), np.uint8)
    ramp[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]  # red rises left to right
    ramp[..., 1] = ramp[..., 2] = 90

    def crops(**kw):
        return random_crops([ramp], 32, 32, np.random.default_rng(5), augment=True, **kw)

    def span(c: torch.Tensor) -> torch.Tensor:  # the range of the ramp each crop covers
        red = c[torch.arange(len(c)), (c.amax((2, 3)) - c.amin((2, 3))).argmax(1)]
        return red.amax((1, 2)) - red.amin((1, 2))

    assert torch.equal(crops(), crops(zoom=2.0))  # the default is the zoom training always had
    near, far = span(crops(zoom=2.0)), span(crops(zoom=8.0))
    assert near.max() < 0.27  # at most 64 of 256 columns
    assert far.mean() > 2 * near.mean() and (far > 0.8).any()  # some crops hold most of the scene
    with pytest.raises(ValueError, match="zoom"):
        StageConfig(zoom=0.5)


def test_training_is_reproducible_and_resumes_exactly(images, tmp_path):
    straight = Trainer(TrainConfig(**TINY, steps=8), images, images[:1], log=lambda s: None)
    straight.run(tmp_path / "a", resume=False)

    interrupted = Trainer(TrainConfig(**TINY, steps=8), images, images[:1], log=lambda s: None)
    for _ in range(4):  # killed after four steps and a saved state
        interrupted.train_step()
    interrupted.save_state(tmp_path / "b")
    resumed = Trainer(TrainConfig(**TINY, steps=8), images, images[:1], log=lambda s: None)
    resumed.run(tmp_path / "b", resume=True, session={"command": "test"})
    assert resumed.step == 8
    assert resumed.sessions == [
        {"command": "test", "from_step": 4, "to_step": 8, "wall_seconds": resumed.sessions[0]["wall_seconds"]}
    ]
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_export_writes_a_loadable_checkpoint_with_its_card(images, tmp_path):
    trainer = Trainer(TrainConfig(**TINY, steps=2), images, images[:1], log=lambda s: None)
    trainer.run(tmp_path / "state", resume=False)
    metrics = trainer.validate(with_baseline=True)
    assert {"input_psnr", "model_psnr", "baseline_psnr", "mask_f1", "clean_psnr"} <= set(metrics)
    card = export(trainer, tmp_path / "v1", {"name": "restore-unet", "version": "v1", "metrics": metrics})
    model, loaded = load_checkpoint(tmp_path / "v1", expected_sha256=card["weights_sha256"])
    assert loaded["training"]["seed"] == 0 and loaded["training"]["steps_done"] == 2
    assert loaded["training"]["degradation_digest"]


def test_hole_weight_counts_errors_inside_the_damage_mask_extra():
    target = torch.full((1, 3, 16, 16), 0.5)
    mask = torch.zeros(1, 1, 16, 16)
    mask[..., 4:8, 4:8] = 1
    in_hole, outside = target.clone(), target.clone()
    in_hole[..., 4:8, 4:8] += 0.2  # the same error, inside and outside the damage
    outside[..., 10:14, 10:14] += 0.2
    plain = [reconstruction(p, target, 0.0) for p in (in_hole, outside)]
    weighted = [reconstruction(p, target, 0.0, mask, hole_weight=1.0) for p in (in_hole, outside)]
    assert torch.isclose(plain[0], plain[1])
    assert torch.isclose(weighted[1], plain[1]) and weighted[0] > plain[0] + 0.19


def test_fine_tuning_starts_from_the_given_weights(images):
    first = Trainer(TrainConfig(**TINY, steps=2), images, images[:1], log=lambda s: None)
    first.train_step()
    second = Trainer(TrainConfig(**TINY | {"seed": 5}, steps=2), images, images[:1], log=lambda s: None)
    second.init_from(first.ema)
    for a, b in zip(first.ema.state_dict().values(), second.g.state_dict().values(), strict=True):
        assert torch.equal(a, b)
