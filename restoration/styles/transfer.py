"""Reference-image style transfer by optimisation (Gatys, Ecker and Bethge, CVPR 2016): start
from the content image and descend on a style loss (Gram matrices and colour distribution of the
reference) plus a content loss (deep features and luminance structure of the content image).

Features come from the same random-weight extractor as the learned styles (or a user's VGG-19).
The optimisation runs at ``size`` pixels on the long side; the change it makes is then brought
to the full image (upsampled and added), so the result keeps the input's size and fine detail.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from restoration.degrade.tone import luminance
from restoration.metrics import ssim
from restoration.styles.features import gram, gram_distance, grams, histogram_distance, quantiles


def _fit(x: torch.Tensor, size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = size / max(h, w)
    if scale >= 1:
        return x
    return F.interpolate(x, size=(max(8, round(h * scale)), max(8, round(w * scale))), mode="area")


def transfer(
    content: torch.Tensor,
    reference: torch.Tensor,
    extractor: torch.nn.Module,
    steps: int = 200,
    size: int = 384,
    style_weight: float = 1.0,
    colour_weight: float = 4.0,
    content_weight: float = 1.0,
    lr: float = 0.05,
    progress: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """``content`` [1, 3, H, W] and ``reference`` [1, 3, h, w] in [0, 1] -> [1, 3, H, W]."""
    small, ref = _fit(content, size), _fit(reference, size)
    with torch.no_grad():
        target_grams, target_q = grams(extractor, ref), quantiles(ref)
        content_feats = [f.detach() for f in extractor(small)[2:]]
    x = small.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr)
    for step in range(steps):
        feats = extractor(x)
        style = gram_distance([gram(f) for f in feats], target_grams).mean()
        colour = histogram_distance(x, target_q).mean()
        deep = sum(
            F.mse_loss(f, c) / c.pow(2).mean().clamp_min(1e-8)
            for f, c in zip(feats[2:], content_feats, strict=True)
        )
        structure = 1 - ssim(luminance(x), luminance(small)).mean()
        loss = style_weight * style + colour_weight * colour + content_weight * (0.1 * deep + structure)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(0, 1)
        if progress is not None:
            progress(step + 1, loss.item())
    change = x.detach() - small
    if change.shape[-2:] != content.shape[-2:]:
        change = F.interpolate(change, size=content.shape[-2:], mode="bicubic", align_corners=False)
    return (content + change).clamp(0, 1)
