"""Training losses: reconstruction (L1, SSIM), damage mask (BCE + Dice), adversarial (hinge)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from restoration.metrics import ssim


def reconstruction(pred: torch.Tensor, target: torch.Tensor, ssim_weight: float = 0.2) -> torch.Tensor:
    return F.l1_loss(pred, target) + ssim_weight * (1 - ssim(pred, target).mean())


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE (damage is rare, so weighted up, but at most 4x: more and the mask swells past the
    damage, which costs precision) plus soft Dice, which does not drown in clean pixels."""
    pos = target.mean().clamp(1e-4, 0.5)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=((1 - pos) / pos).clamp(max=4.0))
    prob = torch.sigmoid(logits)
    dice = 1 - (2 * (prob * target).sum() + 1) / (prob.sum() + target.sum() + 1)
    return bce + dice


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()
