"""How far images are from a style: Gram-matrix and colour-histogram distances to the style's
exemplar statistics, how many pixels have a colour the exemplars never show at that tone (the
palette), and how much of the input's luminance structure survives (SSIM).

The measuring extractor uses another seed and other widths than the training loss's, so a
network cannot score well by fitting the one set of random filters it was trained against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from restoration.degrade.tone import luminance
from restoration.metrics import ssim
from restoration.styles.features import (
    RandomFeatures,
    gram_distance,
    grams,
    histogram_distance,
    mean_grams,
    quantiles,
    ycbcr,
)

EVAL_FEATURES = {"kind": "random", "seed": 1234, "widths": (48, 96, 128, 160)}


def eval_extractor() -> RandomFeatures:
    return RandomFeatures(EVAL_FEATURES["seed"], EVAL_FEATURES["widths"]).eval()


# The palette's cells: 48 tones (luma) by 48 x 48 chroma (Cb, Cr over -0.5..0.5: 5.3/255 a cell).
# Coarser cells (8/255) passed the dark purple a sepia network left in a navy uniform.
PALETTE_BINS = 48
PALETTE_MIN_SHARE = 1e-5  # a cell holds the exemplars' colour when this share of their pixels falls in it


def _cells(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's palette cell index [B, H*W]: BT.601 luma and chroma, binned."""
    y, cb, cr = ycbcr(x.clamp(0, 1)).unbind(1)
    n = PALETTE_BINS
    idx = [(v * n).long().clamp(0, n - 1).flatten(1) for v in (y, cb + 0.5, cr + 0.5)]
    return (idx[0] * n + idx[1]) * n + idx[2]


def palette(images: torch.Tensor) -> torch.Tensor:
    """The colours a set of images [B, 3, H, W] shows at each tone: occupied (luma, Cb, Cr) cells,
    widened by one cell every way, as a bool grid [n, n, n]."""
    n = PALETTE_BINS
    counts = torch.bincount(_cells(images).flatten(), minlength=n**3).float()
    occupied = (counts >= PALETTE_MIN_SHARE * counts.sum()).float().reshape(1, 1, n, n, n)
    return F.max_pool3d(occupied, 3, 1, 1)[0, 0] > 0


def off_palette(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Per image: the share of pixels whose colour, at their tone, the palette does not hold (a
    sepia style's purple saucer; any colour left in a monochrome process)."""
    return (~grid.flatten().to(x.device)[_cells(x)]).float().mean(1)


@dataclass
class StyleStats:
    """A style's statistics: mean Gram matrices per scale, per-channel quantiles, the palette."""

    grams: list[torch.Tensor]
    quantiles: torch.Tensor
    palette: torch.Tensor

    @staticmethod
    def of(extractor: torch.nn.Module, images: torch.Tensor) -> StyleStats:
        return StyleStats(mean_grams(extractor, images), quantiles(images), palette(images))


def style_report(
    extractor: torch.nn.Module, target: StyleStats, inputs: torch.Tensor, outputs: torch.Tensor
) -> dict[str, float]:
    """Distances of inputs and outputs to the style, their ratios, the shares of their pixels off
    the style's palette, and luminance SSIM."""
    with torch.no_grad():
        g_in = gram_distance(grams(extractor, inputs), target.grams).mean().item()
        g_out = gram_distance(grams(extractor, outputs), target.grams).mean().item()
        h_in = histogram_distance(inputs, target.quantiles).mean().item()
        h_out = histogram_distance(outputs, target.quantiles).mean().item()
        p_in, p_out = (off_palette(x, target.palette).mean().item() for x in (inputs, outputs))
        s = ssim(luminance(outputs), luminance(inputs)).mean().item()
    return {
        "gram_before": g_in,
        "gram_after": g_out,
        "gram_ratio": g_out / max(g_in, 1e-12),
        "hist_before": h_in,
        "hist_after": h_out,
        "hist_ratio": h_out / max(h_in, 1e-12),
        "off_palette_before": p_in,
        "off_palette_after": p_out,
        "luma_ssim": s,
    }
