"""Training losses: reconstruction (L1, SSIM), damage mask (BCE + Dice), adversarial (hinge)."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from restoration.metrics import ssim


def float32(fn):
    """Run a loss in float32 with autocast off, whatever region it is called from: under bf16
    autocast SSIM's convolutions ran in bf16 (0.555 against 0.660 on one batch, some negative) and a
    CUDA run's reconstruction loss reached 1.35e15."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        device = next(a.device.type for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor))
        up = lambda a: a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a  # noqa: E731
        with torch.autocast(device, enabled=False):
            return fn(*map(up, args), **{k: up(v) for k, v in kwargs.items()})

    return wrapper


@float32
def reconstruction(
    pred: torch.Tensor,
    target: torch.Tensor,
    ssim_weight: float = 0.2,
    mask: torch.Tensor | None = None,
    hole_weight: float = 0.0,
) -> torch.Tensor:
    """L1 plus SSIM; with ``hole_weight``, the L1 inside the damage ``mask`` counts extra, so
    the model fills wide cracks and tears instead of only dimming them (they are a few percent
    of the pixels, and drown in the mean otherwise)."""
    loss = F.l1_loss(pred, target) + ssim_weight * (1 - ssim(pred, target).mean())
    if mask is not None and hole_weight:
        loss = loss + hole_weight * region_l1(pred, target, mask)
    return loss


@float32
def region_l1(pred: torch.Tensor, target: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """The mean L1 over a region's pixels (``region`` [B, 1, H, W] in [0, 1]); 0 where it is empty."""
    return ((pred - target).abs().mean(dim=1, keepdim=True) * region).sum() / region.sum().clamp(min=1.0)


@float32
def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE (damage is rare, so weighted up, but at most 4x: more and the mask swells past the
    damage, which costs precision) plus soft Dice, which does not drown in clean pixels."""
    pos = target.mean().clamp(1e-4, 0.5)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=((1 - pos) / pos).clamp(max=4.0))
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


@float32
def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


@float32
def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
