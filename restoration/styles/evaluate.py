"""How far images are from a style: Gram-matrix and colour-histogram distances to the style's
exemplar statistics, and how much of the input's luminance structure survives (SSIM).

The measuring extractor uses another seed and other widths than the training loss's, so a
network cannot score well by fitting the one set of random filters it was trained against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from restoration.degrade.tone import luminance
from restoration.metrics import ssim
from restoration.styles.features import RandomFeatures, gram_distance, grams, histogram_distance, mean_grams, quantiles

EVAL_FEATURES = {"kind": "random", "seed": 1234, "widths": (48, 96, 128, 160)}


def eval_extractor() -> RandomFeatures:
    return RandomFeatures(EVAL_FEATURES["seed"], EVAL_FEATURES["widths"]).eval()


@dataclass
class StyleStats:
    """A style's statistics: mean Gram matrices per scale, and per-channel quantiles."""

    grams: list[torch.Tensor]
    quantiles: torch.Tensor

    @staticmethod
    def of(extractor: torch.nn.Module, images: torch.Tensor) -> StyleStats:
        return StyleStats(mean_grams(extractor, images), quantiles(images))


def style_report(extractor: torch.nn.Module, target: StyleStats, inputs: torch.Tensor, outputs: torch.Tensor) -> dict[str, float]:
    """Distances of inputs and outputs to the style, their ratios, and luminance SSIM."""
    with torch.no_grad():
        g_in = gram_distance(grams(extractor, inputs), target.grams).mean().item()
        g_out = gram_distance(grams(extractor, outputs), target.grams).mean().item()
        h_in = histogram_distance(inputs, target.quantiles).mean().item()
        h_out = histogram_distance(outputs, target.quantiles).mean().item()
        s = ssim(luminance(outputs), luminance(inputs)).mean().item()
    return {"gram_before": g_in, "gram_after": g_out, "gram_ratio": g_out / max(g_in, 1e-12),
            "hist_before": h_in, "hist_after": h_out, "hist_ratio": h_out / max(h_in, 1e-12), "luma_ssim": s}  # fmt: skip
