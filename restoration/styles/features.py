"""Features for style losses and style distances, with no pretrained network to download.

``RandomFeatures`` is a small multi-scale convolutional network with fixed random weights drawn
from a seed: Gram matrices of random-weight features carry texture and style (Ustyuzhaninov et
al., "What does it take to generate natural textures?", ICLR 2017; He, Wang and Hopcroft,
"A powerful generative model using random weights for the deep image representation", NeurIPS
2016). ``VGGFeatures`` takes a user's VGG-19 weights file (torchvision's layout) for those who
have one. ``make_extractor(spec)`` builds either from a JSON-safe spec kept in model cards.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from restoration.degrade.tone import luminance


class RandomFeatures(nn.Module):
    """``forward(x) -> [features per scale]``; x in [0, 1], [B, 3, H, W]. Weights never train."""

    def __init__(self, seed: int = 0, widths: tuple[int, ...] = (32, 64, 96, 128)):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.convs = nn.ModuleList()
        cin = 3
        for width in widths:
            conv = nn.Conv2d(cin, width, 3, padding=1)
            with torch.no_grad():  # He-normal, so every scale's activations have a similar size
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=g) * math.sqrt(2 / (cin * 9)))
                conv.bias.zero_()
            self.convs.append(conv)
            cin = width
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, h = [], (x - 0.45) / 0.25
        for i, conv in enumerate(self.convs):
            if i:
                h = F.avg_pool2d(h, 2)
            h = F.relu(conv(h))
            feats.append(h)
        return feats


# torchvision's vgg19().features indices of the convolutions up to relu4_1, and the taps used.
_VGG_CONVS = {
    0: (3, 64),
    2: (64, 64),
    5: (64, 128),
    7: (128, 128),
    10: (128, 256),
    12: (256, 256),
    14: (256, 256),
    16: (256, 256),
    19: (256, 512),
}
_VGG_TAPS = (0, 5, 10, 19)  # relu1_1, relu2_1, relu3_1, relu4_1 (Gatys et al.)


class VGGFeatures(nn.Module):
    """VGG-19's convolutions up to relu4_1, named as in torchvision (``features.N.weight``), so a
    user's ``vgg19`` state dict loads; ImageNet input normalisation."""

    def __init__(self):
        super().__init__()
        self.features = nn.ModuleDict(
            {str(i): nn.Conv2d(a, b, 3, padding=1) for i, (a, b) in _VGG_CONVS.items()}
        )
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def load_user_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load the convolutions from a full VGG-19 state dict (classifier keys are ignored);
        every convolution this needs must be there with its shape."""
        state = {k.removeprefix("module."): v for k, v in state.items()}
        wanted = {f"features.{i}.{p}": f"features.{i}.{p}" for i in _VGG_CONVS for p in ("weight", "bias")}
        missing = [k for k in wanted if k not in state]
        if missing:
            raise ValueError(
                f"not a VGG-19 state dict: missing {missing[:3]}{' …' if len(missing) > 3 else ''}"
            )
        self.load_state_dict({k: state[k] for k in wanted}, strict=True)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, feats = (x - self.mean) / self.std, []
        for i in range(max(_VGG_CONVS) + 1):
            if i in _VGG_CONVS:
                h = F.relu(self.features[str(i)](h))
                if i in _VGG_TAPS:
                    feats.append(h)
            elif i in (4, 9, 18):  # the max-pools between VGG's blocks
                h = F.max_pool2d(h, 2)
        return feats


def make_extractor(spec: dict[str, Any] | None = None) -> nn.Module:
    """``{"kind": "random", "seed": 0}`` (default) or ``{"kind": "vgg19", "weights": PATH}``."""
    spec = spec or {"kind": "random", "seed": 0}
    if spec["kind"] == "random":
        return RandomFeatures(spec.get("seed", 0), tuple(spec.get("widths", (32, 64, 96, 128)))).eval()
    if spec["kind"] == "vgg19":
        from restoration.checkpoints import load_foreign_state_dict

        model = VGGFeatures()
        model.load_user_weights(load_foreign_state_dict(Path(spec["weights"])))
        return model.eval()
    raise ValueError(f"unknown feature extractor {spec['kind']!r}: use 'random' or 'vgg19'")


# -- statistics ----------------------------------------------------------------------------------


def gram(feat: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C], normalised by the number of positions."""
    b, c, h, w = feat.shape
    f = feat.reshape(b, c, h * w)
    return f @ f.transpose(1, 2) / (h * w)


def grams(extractor: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    return [gram(f) for f in extractor(x)]


def gram_distance(a: list[torch.Tensor], target: list[torch.Tensor]) -> torch.Tensor:
    """Mean over scales of the relative squared Frobenius distance ||A - T||² / ||T||², per image
    (``target`` may have batch 1: one set's statistics)."""
    terms = [
        ((ga - gt) ** 2).sum((1, 2)) / (gt**2).sum((1, 2)).clamp_min(1e-12)
        for ga, gt in zip(a, target, strict=True)
    ]
    return torch.stack(terms).mean(0)


QUANTILES = 256


def quantiles(x: torch.Tensor, n: int = QUANTILES) -> torch.Tensor:
    """Per-channel quantiles of a set of images [B, C, H, W] -> [C, n]: the colour histogram as a
    sorted sample, from which 1-D Wasserstein distances are exact and differentiable."""
    flat = x.transpose(0, 1).reshape(x.shape[1], -1)
    q = torch.linspace(0, 1, n, device=x.device, dtype=x.dtype)
    if flat.shape[1] > 2_000_000:  # torch.quantile's input limit: subsample evenly
        flat = flat[:, :: math.ceil(flat.shape[1] / 2_000_000)]
    return torch.quantile(flat, q, dim=1).T.contiguous()


def histogram_distance(x: torch.Tensor, target_q: torch.Tensor) -> torch.Tensor:
    """Per image: the mean over channels of the 1-D Wasserstein distance between the image's
    pixel values and a target distribution, given by its quantiles ([C, n], or [B, C, n])."""
    b, c = x.shape[:2]
    flat = x.reshape(b, c, -1)
    n = target_q.shape[-1]
    idx = torch.linspace(0, flat.shape[2] - 1, n, device=x.device).round().long()
    ours = flat.sort(dim=2).values[..., idx]
    return (ours - (target_q if target_q.ndim == 3 else target_q[None])).abs().mean((1, 2))


def ycbcr(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] RGB in [0, 1] -> BT.601 luma in [0, 1] and chroma Cb, Cr in [-0.5, 0.5]."""
    y = luminance(x)
    return torch.cat([y, (x[:, 2:3] - y) / 1.772, (x[:, 0:1] - y) / 1.402], 1)


TINT_BINS = 16


def tint_curve(images: torch.Tensor, bins: int = TINT_BINS) -> tuple[torch.Tensor, torch.Tensor]:
    """The chroma a set of images [B, 3, H, W] shows at each tone: per luma bin, the mean and the
    standard deviation of (Cb, Cr), each [bins, 2]; bins the set never reaches take their nearest
    neighbour's. A monochrome process has one tint per tone and little spread; a colour process a
    wide spread."""
    ycc = ycbcr(images.clamp(0, 1))
    y, c = ycc[:, 0].flatten(), ycc[:, 1:].transpose(0, 1).reshape(2, -1)
    idx = (y * bins).long().clamp(0, bins - 1)
    n = torch.bincount(idx, minlength=bins).to(c.dtype)
    s1 = torch.stack([torch.bincount(idx, ch, minlength=bins) for ch in c], 1).to(c.dtype)
    s2 = torch.stack([torch.bincount(idx, ch * ch, minlength=bins) for ch in c], 1).to(c.dtype)
    mean = s1 / n.clamp_min(1)[:, None]
    std = (s2 / n.clamp_min(1)[:, None] - mean**2).clamp_min(0).sqrt()
    seen = (n > 0).nonzero().flatten()
    nearest = seen[(torch.arange(bins, device=seen.device)[:, None] - seen[None]).abs().argmin(1)]
    return mean[nearest], std[nearest]


def tint_distance(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Per image: the mean over pixels of how far each pixel's chroma lies outside a tint curve
    (``tint_curve``: the target's mean chroma at the pixel's tone, give or take its spread), L1
    over Cb and Cr. Zero for a sepia pixel under a sepia curve; a purple one pays its distance."""
    ycc = ycbcr(x)
    bins = mean.shape[0]
    pos = (ycc[:, 0] * bins - 0.5).clamp(0, bins - 1)
    lo = pos.floor().long()
    hi, w = (lo + 1).clamp(max=bins - 1), (pos - lo)[..., None]
    m, sd = torch.lerp(mean[lo], mean[hi], w), torch.lerp(std[lo], std[hi], w)  # [B, H, W, 2]
    return F.relu((ycc[:, 1:].permute(0, 2, 3, 1) - m).abs() - sd).sum(-1).flatten(1).mean(1)


def mean_grams(extractor: nn.Module, crops: torch.Tensor, chunk: int = 8) -> list[torch.Tensor]:
    """The mean Gram matrices of a set of images (or crops), each [1, C, C]."""
    total: list[torch.Tensor] | None = None
    with torch.no_grad():
        for part in crops.split(chunk):
            gs = [g.sum(0, keepdim=True) for g in grams(extractor, part)]
            total = gs if total is None else [t + g for t, g in zip(total, gs, strict=True)]
    return [t / len(crops) for t in total]
