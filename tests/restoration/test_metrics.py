"""Metrics agree with scikit-image and with their definitions; losses point the right way."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from restoration.losses import d_hinge, g_hinge, mask_loss, reconstruction
from restoration.metrics import mask_f1, mask_f1_within, psnr, ssim


@pytest.fixture(scope="module")
def pair():
    from skimage import data

    clean = torch.from_numpy(data.astronaut()[:96, :128].copy()).permute(2, 0, 1)[None].float() / 255
    noisy = (clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    return clean, noisy


def test_psnr_matches_its_definition(pair):
    clean, noisy = pair
    mse = float(((clean - noisy) ** 2).mean())
    assert psnr(noisy, clean).item() == pytest.approx(10 * math.log10(1 / mse), rel=1e-5)
    assert psnr(clean, clean).item() > 100


def test_ssim_matches_scikit_image(pair):
    clean, noisy = pair
    ours = ssim(noisy, clean).item()
    ref = structural_similarity(
        clean[0].permute(1, 2, 0).numpy(),
        noisy[0].permute(1, 2, 0).numpy(),
        channel_axis=2,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )
    assert ours == pytest.approx(ref, abs=2e-3)
    assert ssim(clean, clean).item() == pytest.approx(1.0, abs=1e-5)


def test_mask_f1():
    t = torch.zeros(1, 1, 8, 8)
    t[..., 2:4, 2:6] = 1
    assert mask_f1(t, t).item() == 1.0
    assert mask_f1(torch.zeros_like(t), torch.zeros_like(t)).item() == 1.0
    assert mask_f1(torch.zeros_like(t), t).item() == 0.0
    half = t.clone()
    half[..., 2:4, 4:6] = 0  # predicts half of the damage, nothing else
    assert mask_f1(half, t).item() == pytest.approx(2 * 4 / (4 + 8))


def test_losses_prefer_the_right_answer(pair):
    clean, noisy = pair
    assert reconstruction(clean, clean) < reconstruction(noisy, clean)
    target = (torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)) < 0.1).float()
    good, bad = (target * 2 - 1) * 8, (1 - target * 2) * 8  # logits
    assert mask_loss(good, target) < mask_loss(bad, target)
    real, fake = torch.full((4, 1, 3, 3), 2.0), torch.full((4, 1, 3, 3), -2.0)
    assert d_hinge(real, fake).item() == 0.0 and d_hinge(fake, real).item() > 0
    assert g_hinge(real) < g_hinge(fake)


def test_ssim_is_differentiable(pair):
    clean, noisy = pair
    x = noisy.clone().requires_grad_(True)
    (1 - ssim(x, clean).mean()).backward()
    assert x.grad is not None and np.isfinite(x.grad.numpy()).all() and x.grad.abs().sum() > 0


def test_mask_f1_within_forgives_a_crack_marked_one_pixel_off_but_not_a_false_one():
    """A one-pixel crack marked one pixel beside itself: strictly all wrong, within 2 px all right;
    a mark far from any damage is wrong either way."""
    truth = torch.zeros(1, 1, 32, 32)
    truth[0, 0, 16, 4:28] = 1
    beside = truth.roll(1, dims=2)
    assert mask_f1(beside, truth).item() == 0.0
    assert mask_f1_within(beside, truth) == 1.0
    assert mask_f1_within(beside, truth, tolerance=0) == 0.0
    far = torch.zeros_like(truth)
    far[0, 0, 2, 4:28] = 1
    assert mask_f1_within(far, truth) == 0.0
    half = torch.maximum(truth, far)  # every crack pixel found, half the marks false
    assert abs(mask_f1_within(half, truth) - 2 * 0.5 * 1.0 / 1.5) < 1e-6
    assert mask_f1_within(torch.zeros_like(truth), torch.zeros_like(truth)) == 1.0
