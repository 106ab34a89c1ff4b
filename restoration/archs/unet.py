"""U-Net restorer: an RGB head predicting a residual over the input, and a damage-mask head.

No normalisation layers: nothing depends on statistics of the whole input, so tiles of a scan
give the same result as the scan at once (away from the tile borders that the engine blends).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restoration.registry import register_model


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2, inplace=True))


class Block(nn.Module):
    """Two 3x3 convolutions with a residual connection."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv1, self.conv2 = _conv(ch, ch), nn.Conv2d(ch, ch, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.conv2(self.conv1(x)))


class UNetBody(nn.Module):
    """The encoder-decoder every U-Net stage shares; ``features(x)`` gives ``base`` channels at
    the input's size (padded to the grid: callers crop)."""

    def __init__(self, in_ch: int = 3, base: int = 24, depth: int = 3, blocks: int = 1):
        super().__init__()
        self.depth = depth
        chans = [base * 2**i for i in range(depth + 1)]
        self.stem = _conv(in_ch, base)
        self.down = nn.ModuleList(
            nn.Sequential(*[Block(chans[i]) for _ in range(blocks)], _conv(chans[i], chans[i + 1], stride=2))
            for i in range(depth)
        )
        self.middle = nn.Sequential(*[Block(chans[-1]) for _ in range(blocks)])
        self.reduce = nn.ModuleList(_conv(chans[i + 1], chans[i]) for i in reversed(range(depth)))
        self.up = nn.ModuleList(
            nn.Sequential(_conv(2 * chans[i], chans[i]), *[Block(chans[i]) for _ in range(blocks)])
            for i in reversed(range(depth))
        )

    @property
    def alignment(self) -> int:
        """The downsampling factor: tiles starting on multiples of it see the whole image's grid."""
        return 2**self.depth

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        m = 2**self.depth
        pad = (0, (-w) % m, 0, (-h) % m)
        feat = self.stem(F.pad(x, pad, mode="replicate") if any(pad) else x)
        skips = []
        for down in self.down:
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for reduce, up, skip in zip(self.reduce, self.up, reversed(skips), strict=True):
            feat = reduce(F.interpolate(feat, size=skip.shape[-2:], mode="bilinear", align_corners=False))
            feat = up(torch.cat([feat, skip], dim=1))
        return feat


class UNetRestorer(UNetBody):
    """``forward(x) -> (restored, mask_logits)``; ``x`` in [0, 1], any height and width."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, base: int = 24, depth: int = 3, blocks: int = 1):
        super().__init__(in_ch, base, depth, blocks)
        self.image_head = nn.Conv2d(base, out_ch, 3, 1, 1)
        self.mask_head = nn.Conv2d(base, 1, 3, 1, 1)
        nn.init.zeros_(self.image_head.weight)  # start as the identity: restore nothing
        nn.init.zeros_(self.image_head.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = x.shape[-2:]
        feat = self.features(x)
        restored = x + self.image_head(feat)[..., :h, :w]
        return restored, self.mask_head(feat)[..., :h, :w]


class DamageDetector(UNetBody):
    """The *detect* stage: ``forward(x) -> mask_logits`` [B, 1, H, W] at the input's own
    resolution (no downscaled copy), from colour and luminance structure.

    ``pad``: the input is mirrored outward by that many pixels (a multiple of the alignment, so that
    the grid stays the image's) before the network sees it. Without it the convolutions' zero
    padding frames every picture in black, and a detector learns that a bright edge against the
    frame is a crack: v16's marks within 16 px of the edge of coffee and of grace_hopper are four and
    five times as dense as inside them (wood grain along coffee's edge, a flag's star cut by
    grace_hopper's). Mirrored, an edge looks like the picture's inside; a lost corner must then be
    told by its look, not by touching the frame, so a detector is trained with the pad it will run
    with."""

    def __init__(self, in_ch: int = 3, base: int = 16, depth: int = 3, blocks: int = 1, pad: int = 0):
        super().__init__(in_ch, base, depth, blocks)
        if pad < 0 or pad % self.alignment:
            raise ValueError(
                f"the detector's pad is a multiple of its alignment {self.alignment}, not {pad!r}"
            )
        self.pad = pad
        self.head = nn.Conv2d(base, 1, 3, 1, 1)
        nn.init.constant_(self.head.bias, -3.0)  # damage is rare: start by marking nothing

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # a mirror is at most the picture less a pixel wide; a smaller picture gets a narrower one
        p = min(self.pad, (min(h, w) - 1) // self.alignment * self.alignment)
        if p:
            x = F.pad(x, (p, p, p, p), mode="reflect")
        return self.head(self.features(x))[..., p : p + h, p : p + w]


register_model("unet_restorer")(UNetRestorer)
register_model("unet_restorer_test", base=8, depth=2)(UNetRestorer)
register_model("damage_detector")(DamageDetector)
register_model("damage_detector_test", base=8, depth=2)(DamageDetector)
