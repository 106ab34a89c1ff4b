"""The *inpaint* stage: a mask-conditioned network of gated convolutions (Yu et al., DeepFill v2)
with dilated residual blocks at a quarter of the resolution.

Why gated and dilated rather than Fourier convolutions (LaMa): a Fourier convolution's receptive
field is the whole input, so a tile's fill depends on where the tile was cut and tiles would not
agree with the whole image; dilated convolutions reach far (``receptive_field`` pixels, more than
the widest measured cracks and than a 128 px hole) yet stay bounded, so the engine's overlap
makes tiles agree. Gating learns, layer by layer, which pixels are valid, where partial
convolutions' hard mask update loses thin cracks' soft edges.

``forward(x, mask) -> filled``: ``x`` in [0, 1], ``mask`` [B, 1, H, W] in [0, 1] (1 = fill);
pixels outside the mask are returned exactly as they came in.

``sees_under``: the network also sees what lies under the holes (three more input channels). A
detector's holes are not all damage: some cover a glasses rim, a tower or a clock hand that only
look like cracks, and some cover a crack in relief with the picture intact beneath. Blind to what
is under a hole, an inpainter replaces both with a guess (on the bench's realistic set, six tenths
of the error on undamaged pixels was v10's fill of such false marks); seeing it, it can keep what
is picture and correct what is damage. Trained on holes a detector draws over damaged pictures
(``restoration.stage_training``); the extra channels' weights start at zero, so a blind
inpainter's weights load into it and fill alike until it has learnt to use them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restoration.registry import register_model


class GatedConv(nn.Module):
    """``act(conv_f(x)) * sigmoid(conv_g(x))``: the gate learns where the features are valid."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, 2 * cout, k, stride, dilation * (k // 2), dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f, g = self.conv(x).chunk(2, dim=1)
        return F.leaky_relu(f, 0.2) * torch.sigmoid(g)


class DilatedBlock(nn.Module):
    def __init__(self, ch: int, dilation: int):
        super().__init__()
        self.a, self.b = GatedConv(ch, ch, dilation=dilation), GatedConv(ch, ch, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.b(self.a(x))


class GatedInpainter(nn.Module):
    def __init__(
        self, base: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8, 2, 4), sees_under: bool = False
    ):
        super().__init__()
        self.dilations, self.sees_under = tuple(dilations), bool(sees_under)
        self.stem = GatedConv(7 if sees_under else 4, base, k=5)
        self.down1 = GatedConv(base, 2 * base, stride=2)
        self.down2 = GatedConv(2 * base, 4 * base, stride=2)
        self.body = nn.Sequential(*[DilatedBlock(4 * base, d) for d in self.dilations])
        self.up2 = GatedConv(4 * base + 2 * base, 2 * base)
        self.up1 = GatedConv(2 * base + base, base)
        self.head = nn.Conv2d(base, 3, 3, 1, 1)

    @property
    def alignment(self) -> int:
        return 4

    @property
    def receptive_field(self) -> int:
        """Span in input pixels that one output pixel can see (theoretical, through the body)."""
        return 1 + 4 + 2 * 2 + 2 * 2 * 2 + 4 * sum(4 * d for d in self.dilations) + 2 * 4 + 2 * 2

    @property
    def tile_overlap(self) -> int:
        # The engine keeps only the inner half of an overlap; most of a fill's evidence lies within
        # a quarter of the span (the effective receptive field is far smaller than the theoretical).
        return 128

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, blind: bool | torch.Tensor = False
    ) -> torch.Tensor:
        """``blind`` (with ``sees_under``; True, or per picture [B, 1, 1, 1] in {0, 1}): fill without
        looking under the holes, as for a curator's own mask, whose every mark is to be filled."""
        h, w = x.shape[-2:]
        pad = (0, (-w) % 4, 0, (-h) % 4)
        xi, mi = (F.pad(t, pad, mode="replicate") if any(pad) else t for t in (x, mask))
        seen = [xi * (1 - mi), mi]
        if self.sees_under:
            seen.append(
                xi * mi * (1 - blind.to(xi.dtype)) if torch.is_tensor(blind) else xi * mi * float(not blind)
            )
        s0 = self.stem(torch.cat(seen, dim=1))
        s1 = self.down1(s0)
        feat = self.body(self.down2(s1))
        feat = self.up2(
            torch.cat([F.interpolate(feat, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1], 1)
        )
        feat = self.up1(
            torch.cat([F.interpolate(feat, size=s0.shape[-2:], mode="bilinear", align_corners=False), s0], 1)
        )
        fill = torch.sigmoid(self.head(feat))[..., :h, :w]
        return x * (1 - mask) + fill * mask


register_model("gated_inpainter")(GatedInpainter)
register_model("gated_inpainter_test", base=8, dilations=(1, 2))(GatedInpainter)
