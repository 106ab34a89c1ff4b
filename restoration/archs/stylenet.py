"""A feed-forward network for several styles at once, chosen by a style code through FiLM.

Conditional normalisation, but with no statistics of the input: each convolution's output is
scaled and shifted by values computed from the style code alone (FiLM, Perez et al. 2018; the
role conditional instance norm plays in Dumoulin et al. 2017). Nothing depends on the image as
a whole, so tiles of a scan give the scan's result, and a code may mix styles.

Two paths: a per-pixel colour mapping (1x1 convolutions: tone curves, toning, dye fading) that
carries most of a period look and cannot disturb structure, and a convolutional path for local
texture (grain, paper, soft fall-off) whose change is bounded (``texture`` times a tanh), so the
texture losses cannot paint new structure over the picture. Convolutions pad by replication, so
image borders get no frame.

``tones`` holds each style's exemplar luma quantiles (``styles.tone``), set by training and saved
with the weights; NaN where unknown (checkpoints from before it, a user's own weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restoration.registry import register_model

TONE_QUANTILES = 33  # luma quantiles kept per style (restoration.styles.tone fits them)


class FiLM(nn.Module):
    def __init__(self, n_styles: int, ch: int):
        super().__init__()
        self.gamma, self.beta = nn.Linear(n_styles, ch), nn.Linear(n_styles, ch)
        for lin in (self.gamma, self.beta):  # start as the identity for every style
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return x * (1 + self.gamma(code)[..., None, None]) + self.beta(code)[..., None, None]


class _ConvFiLM(nn.Module):
    def __init__(self, n_styles: int, cin: int, cout: int, stride: int = 1, act: bool = True, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, padding_mode="replicate")
        self.film = FiLM(n_styles, cout)
        self.act = act

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        h = self.film(self.conv(x), code)
        return F.leaky_relu(h, 0.2) if self.act else h


class _Residual(nn.Module):
    def __init__(self, n_styles: int, ch: int):
        super().__init__()
        self.a, self.b = _ConvFiLM(n_styles, ch, ch), _ConvFiLM(n_styles, ch, ch, act=False)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.b(self.a(x, code), code), 0.2)


class StyleNet(nn.Module):
    """``forward(x, code) -> styled``: x in [0, 1] [B, 3, H, W]; code is [B] style indices or
    [B, n_styles] weights (one-hot, or a mixture). Output is x plus a predicted change."""

    def __init__(
        self, n_styles: int = 4, base: int = 32, blocks: int = 2, colour: int = 32, texture: float = 0.15
    ):
        super().__init__()
        self.n_styles, self.texture = n_styles, texture
        self.colour = nn.ModuleList(
            [_ConvFiLM(n_styles, 3, colour, k=1), _ConvFiLM(n_styles, colour, colour, k=1)]
        )
        self.colour_head = nn.Conv2d(colour, 3, 1)
        # The overlap tiles need to agree with the whole image (within 1/255 on 8-bit output):
        # the receptive field grows by 16 px per residual block at quarter scale. Measured on
        # the shipped v1 (2 blocks): 17/255 at 64 px, 1/255 at 96.
        self.tile_overlap = 32 + 32 * blocks
        self.stem = _ConvFiLM(n_styles, 3, base)
        self.down1 = _ConvFiLM(n_styles, base, 2 * base, stride=2)
        self.down2 = _ConvFiLM(n_styles, 2 * base, 4 * base, stride=2)
        self.body = nn.ModuleList(_Residual(n_styles, 4 * base) for _ in range(blocks))
        self.up1 = _ConvFiLM(n_styles, 4 * base, 2 * base)
        self.up2 = _ConvFiLM(n_styles, 2 * base, base)
        self.head = nn.Conv2d(base, 3, 3, 1, 1, padding_mode="replicate")
        for head in (self.head, self.colour_head):  # start as the identity
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.register_buffer("tones", torch.full((n_styles, TONE_QUANTILES), float("nan")))
        self._register_load_state_dict_pre_hook(self._keep_tones)

    def _keep_tones(self, state_dict, prefix, *_):
        """Weights saved without ``tones`` load, keeping this network's (NaN unless set)."""
        state_dict.setdefault(prefix + "tones", self.tones.clone())

    def has_tones(self) -> bool:
        return bool(torch.isfinite(self.tones).all())

    alignment = 4  # two stride-2 convolutions: tiles must start on multiples of 4

    def code(self, style: torch.Tensor | int, batch: int, device: torch.device) -> torch.Tensor:
        """Style indices (one, or one per image) as one-hot codes; [B, n_styles] weights as given."""
        if isinstance(style, torch.Tensor) and style.ndim == 2:
            return style.to(device).float()
        idx = torch.as_tensor(style, device=device).long().reshape(-1)
        if int(idx.min()) < 0 or int(idx.max()) >= self.n_styles:
            raise ValueError(f"style index out of range 0..{self.n_styles - 1}")
        return F.one_hot(idx.expand(batch) if idx.numel() == 1 else idx, self.n_styles).float()

    def forward(self, x: torch.Tensor, style: torch.Tensor | int = 0) -> torch.Tensor:
        code = self.code(style, x.shape[0], x.device)
        h, w = x.shape[-2:]
        pad = (0, (-w) % 4, 0, (-h) % 4)
        xp = F.pad(x, pad, mode="replicate") if any(pad) else x
        s0 = self.stem(xp, code)
        s1 = self.down1(s0, code)
        f = self.down2(s1, code)
        for block in self.body:
            f = block(f, code)
        f = self.up1(F.interpolate(f, size=s1.shape[-2:], mode="bilinear", align_corners=False), code) + s1
        f = self.up2(F.interpolate(f, size=s0.shape[-2:], mode="bilinear", align_corners=False), code) + s0
        c = x
        for layer in self.colour:
            c = layer(c, code)
        mapped = x + self.colour_head(c)
        return mapped + self.texture * torch.tanh(self.head(f)[..., :h, :w])


register_model("style_net")(StyleNet)
register_model("style_net_test", n_styles=2, base=8, blocks=1)(StyleNet)
