"""Quality metrics on [B, C, H, W] tensors in [0, 1]: PSNR, SSIM, damage-mask F1."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per image."""
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(1e-12))


def region_psnr(pred: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> float:
    """PSNR in dB over the pixels where ``where`` [B, 1, H, W] is set, pooled over the batch
    (inside a damage mask: removal; outside it: harm)."""
    sel = where.expand_as(target) > 0.5
    mse = ((pred - target)[sel] ** 2).mean().clamp_min(1e-12)
    return float(-10 * torch.log10(mse))


def _gaussian_window(size: int, sigma: float, channels: int, like: torch.Tensor) -> torch.Tensor:
    x = torch.arange(size, dtype=like.dtype, device=like.device) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size)


def ssim(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, size: int = 11, sigma: float = 1.5
) -> torch.Tensor:
    """Structural similarity (Wang et al. 2004, Gaussian window), one value per image; differentiable."""
    c = pred.shape[1]
    win = _gaussian_window(size, sigma, c, pred)
    blur = lambda t: F.conv2d(t, win, groups=c)  # noqa: E731  ('valid' region, as scikit-image crops)
    mu_p, mu_t = blur(pred), blur(target)
    var_p = blur(pred * pred) - mu_p**2
    var_t = blur(target * target) - mu_t**2
    cov = blur(pred * target) - mu_p * mu_t
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_p * mu_t + c1) * (2 * cov + c2)) / ((mu_p**2 + mu_t**2 + c1) * (var_p + var_t + c2))
    return s.flatten(1).mean(1)


def mask_counts(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> tuple[int, int, int]:
    """Pixels a predicted damage mask (probabilities) marks rightly, marks, and should mark, over
    the whole batch: precision is the first over the second, recall the first over the third."""
    p, t = pred >= threshold, target >= 0.5
    return int((p & t).sum()), int(p.sum()), int(t.sum())


def f1_from_counts(hits: int, marked: int, truth: int) -> float:
    """F1 from :func:`mask_counts`' three counts; both masks empty counts as perfect agreement."""
    return 2 * hits / (marked + truth) if marked + truth else 1.0


def mask_f1_within(
    pred: torch.Tensor, target: torch.Tensor, tolerance: int = 2, threshold: float = 0.5
) -> float:
    """F1 with the crack-detection literature's boundary tolerance (CrackForest, DeepCrack: a
    marked pixel within ``tolerance`` pixels of a damaged one counts as right, and a damaged pixel
    within that of a marked one as found), over the whole batch [N, 1, H, W]. A thin crack marked
    one pixel wider or beside itself is a miss to the strict F1 and a hit here; the fill, grown
    past the mask, repairs it either way. Both masks empty counts as perfect agreement."""
    p, t = (pred >= threshold).float(), (target >= 0.5).float()
    k = 2 * tolerance + 1
    near_t, near_p = F.max_pool2d(t, k, 1, tolerance), F.max_pool2d(p, k, 1, tolerance)
    marked, truth = p.sum().item(), t.sum().item()
    if not marked and not truth:
        return 1.0
    precision = (p * near_t).sum().item() / marked if marked else 0.0
    recall = (t * near_p).sum().item() / truth if truth else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def mask_f1(pred: torch.Tensor, target: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """F1 of a predicted damage mask (probabilities) against the true one, over the whole batch.

    Both empty counts as perfect agreement.
    """
    return torch.tensor(f1_from_counts(*mask_counts(pred, target, threshold)), device=pred.device)
