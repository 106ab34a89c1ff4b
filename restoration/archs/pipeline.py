"""The staged restorer, one model version to the catalogue: *detect* marks damaged pixels at the
scan's own resolution, *inpaint* fills them from their surroundings (pixels outside the grown
mask are kept), *denoise* (optional) removes grain and noise over the whole picture, as far as
``denoise_strength`` says (1: its output; 0.5: half way from the filled picture to it).

Each stage is a registered architecture built by name from the pipeline's config, so the card
lists every stage's architecture and config (and, written by ``restoration.stages``, each
stage's weights digest). ``forward(x, mask=None) -> (restored, mask_logits)`` like the single
U-Net; with ``mask`` (a curator's own, 1 = damaged) the detector is not consulted.

``keep_below`` (0: off): an inpainter that sees under its holes (a keep head) is consulted only
where the detector is less sure than this (a soft threshold, as ``threshold`` is); where it is
surer, and a ``grow`` round that, the hole is filled without looking under it, as a curator's mask
is. The keep head spares the picture under a false mark, but on real scans it also keeps the
half-lit edges of cracks the detector is sure of (a thin bright ghost of each crack): v16's
detector marks 0.36% of the real boy's restored scan again (``bench/real_scans.py``'s "left"),
0.18% with ``keep_below`` 0.9. The blind fill everywhere (as for a curator's mask) leaves fewer
still, but fills every false mark. restore-unet v17 ships with 0.9.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from restoration.recipe import VIEWS
from restoration.registry import build, register_model

STAGES = ("detect", "inpaint", "denoise")


def _flip(x: torch.Tensor, i: int) -> torch.Tensor:
    """View ``i`` (0..7): transposed from 4 on, mirrored left-right (1, 3) and upside down (2, 3)."""
    dims = [d for d, on in ((-1, i % 4 in (1, 3)), (-2, i % 4 in (2, 3))) if on]
    return x.flip(dims) if dims else x


def detect_views(detect: nn.Module, x: torch.Tensor, views: int) -> torch.Tensor:
    """The detector's logits averaged over ``views`` mirrored and transposed copies of ``x``."""
    total = None
    for i in range(views):
        seen = _flip(x.transpose(-1, -2) if i >= 4 else x, i)
        back = _flip(detect(seen).float(), i)
        back = back.transpose(-1, -2) if i >= 4 else back
        total = back if total is None else total + back
    return (total / views).to(x.dtype)


def detect_probability(detect: nn.Module, x: torch.Tensor, views: int = 1) -> torch.Tensor:
    """The detector's damage probability (float32) for ``x`` [B, 3, H, W] of any size: padded
    (replicated) to the detector's alignment, ``views`` averaged, cropped back to H x W."""
    h, w = x.shape[-2:]
    a = int(getattr(detect, "alignment", 1))
    logits = detect_views(detect, F.pad(x, (0, -w % a, 0, -h % a), mode="replicate"), views)
    return torch.sigmoid(logits.float())[..., :h, :w]


def _soft(prob: torch.Tensor, threshold: float, softness: float) -> torch.Tensor:
    """A soft threshold of the damage probability, in [0, 1] (tiles whose probabilities differ
    by a hair fill alike)."""
    return ((prob - (threshold - softness / 2)) / max(softness, 1e-6)).clamp(0, 1)


def _broad(a: torch.Tensor, k: int) -> torch.Tensor:
    """Where a k x k square fits inside the marks of ``a`` (an opening), and their frayed rim."""
    marked = (a > 0.5).to(a.dtype)
    opened = F.max_pool2d(-F.max_pool2d(-marked, k, 1, k // 2), k, 1, k // 2)
    return F.max_pool2d(opened, 5, 1, 2)


def grow_by(a: torch.Tensor, pixels: int) -> torch.Tensor:
    """Marks ``a`` [B, 1, H, W] grown by ``pixels`` in every direction (a square dilation)."""
    return F.max_pool2d(a, 2 * pixels + 1, 1, pixels) if pixels > 0 else a


def fill_holes(
    prob: torch.Tensor,
    threshold: float = 0.5,
    softness: float = 0.3,
    grow: int = 2,
    max_width: int = 0,
    broad_threshold: float = 0.0,
) -> torch.Tensor:
    """What to fill, in [0, 1]: a soft threshold of the damage probability (so tiles whose
    probabilities differ by a hair fill alike), grown by ``grow`` pixels to take in the ragged rims
    that a crack leaves half-lit.

    With ``max_width``, only marks narrower than that many pixels are filled: cracks, scratches,
    creases, dust. A broad mark (a white collar, a sleeve, a star on a flag, or real emulsion loss)
    is left as it is: the detector cannot tell those apart, filling a collar destroys the picture,
    and a curator who wants a loss filled draws its mask (``archive mask``; the pipeline fills a
    curator's mask as drawn). The inpainter's training draws its holes this way too.

    With ``broad_threshold`` (above ``threshold``), a broad mark the detector is that sure of is
    filled after all: where its probability passes ``broad_threshold`` over a k x k square, the
    mark and its frayed rim are filled as a narrow one is (a lost corner, a flake of emulsion);
    elsewhere in a broad mark only the pixels above ``broad_threshold``. 0: broad marks are never
    filled."""
    a = _soft(prob, threshold, softness)
    if max_width > 0:
        k = max_width | 1
        rim = _broad(a, k)
        if broad_threshold > 0:
            sure = _soft(prob, broad_threshold, softness)
            a = a * (1 - rim) + rim * torch.maximum(a * _broad(sure, k), sure)
        else:
            a = a * (1 - rim)
    return grow_by(a, grow)


class RestorePipeline(nn.Module):
    def __init__(
        self,
        stages: dict[str, dict],
        threshold: float = 0.5,
        softness: float = 0.3,
        grow: int = 2,
        max_width: int = 0,
        views: int = 1,
        denoise_strength: float = 1.0,
        broad_threshold: float = 0.0,
        keep_below: float = 0.0,
    ):
        super().__init__()
        if views not in VIEWS:
            raise ValueError(f"the detector's views are one of {VIEWS}, not {views!r}")
        if not 0.0 <= denoise_strength <= 1.0:
            raise ValueError(f"the denoise strength is between 0 and 1, not {denoise_strength!r}")
        unknown = set(stages) - set(STAGES)
        if unknown or not {"detect", "inpaint"} <= set(stages):
            raise ValueError(
                f"a restore pipeline needs detect and inpaint stages (and may have denoise), not {sorted(stages)}"
            )
        for name, value in (("the broad threshold", broad_threshold), ("keep_below", keep_below)):
            if value and not threshold < value <= 1:
                raise ValueError(f"{name} is above the threshold ({threshold}) and at most 1, not {value!r}")
        self.threshold, self.softness, self.grow, self.max_width = threshold, softness, grow, max_width
        self.broad_threshold, self.keep_below = float(broad_threshold), float(keep_below)
        self.views, self.denoise_strength = views, float(denoise_strength)
        for name in STAGES:
            spec = stages.get(name)
            setattr(self, name, build(spec["architecture"], **spec.get("config", {})) if spec else None)

    def stages(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in STAGES if getattr(self, name) is not None}

    @property
    def alignment(self) -> int:
        return math.lcm(*(int(getattr(m, "alignment", 1)) for m in self.stages().values()))

    @property
    def tile_overlap(self) -> int:
        return max([64] + [int(getattr(m, "tile_overlap", 0)) for m in self.stages().values()])

    def holes(self, prob: torch.Tensor, narrow_only: bool = True) -> torch.Tensor:
        """What to fill: :func:`fill_holes` with this pipeline's settings."""
        return fill_holes(
            prob,
            self.threshold,
            self.softness,
            self.grow,
            self.max_width if narrow_only else 0,
            self.broad_threshold,
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if mask is None:
            logits = self.detect(x) if self.views == 1 else detect_views(self.detect, x, self.views)
            prob = torch.sigmoid(logits.float()).to(x.dtype)
        else:
            prob = mask.to(x.dtype)
            logits = torch.logit(mask.float().clamp(1e-4, 1 - 1e-4)).to(x.dtype)
        holes = self.holes(prob, narrow_only=mask is None)  # a curator's mask is filled as drawn
        # nothing to fill: the inpainter would return x. A curator's marks are all damage: an
        # inpainter that can look under its holes fills them without looking; so are the detector's
        # where it is sure (keep_below), and their grown rims.
        blind: bool | torch.Tensor = mask is not None
        if not blind and self.keep_below:
            blind = grow_by(_soft(prob, self.keep_below, self.softness), self.grow)
        y = self.inpaint(x, holes, blind=blind) if bool(holes.any()) else x
        if self.denoise is not None and self.denoise_strength > 0:
            y = torch.lerp(y, self.denoise(y)[0], self.denoise_strength)
        return y, logits


register_model("restore_pipeline")(RestorePipeline)
register_model(
    "restore_pipeline_test",
    stages={
        "detect": {"architecture": "damage_detector_test"},
        "inpaint": {"architecture": "gated_inpainter_test"},
        "denoise": {"architecture": "unet_restorer_test"},
    },
)(RestorePipeline)
