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

``sees_under``: a *keep* head also looks under the holes. A detector's holes are not all damage:
some cover a glasses rim, a tower or a clock hand that only look like cracks (on the bench's
realistic set, six tenths of v10's error on undamaged pixels was its fill of such false marks).
Blind to what is under a hole, an inpainter replaces them with a guess. The keep head (dilated
gated convolutions, ``keep_width`` channels, 63 px across) sees the scan, the fill and the holes
and says, pixel by pixel, how much of what is under the hole to keep: ``fill = a * under + (1 - a)
* fill``. It is trained alone over a blind inpainter's weights (``restoration.stage_training``), so
the fill itself is that inpainter's, and ``blind=True`` (a curator's mask: every mark is to be
filled) is that inpainter bit for bit. Why a head rather than more input channels: channels
zero-initialised on a trained inpainter did not move in 500 steps (what is under a hole must be
kept in some holes and dropped in others, and the two pulls cancel in a first layer).
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


class KeepHead(nn.Module):
    """How much of what lies under a hole to keep, in [0, 1], from the scan, the fill and the holes."""

    def __init__(self, width: int = 24, dilations: tuple[int, ...] = (1, 2, 4, 8)):
        super().__init__()
        self.stem = GatedConv(7, width)
        self.body = nn.Sequential(*[DilatedBlock(width, d) for d in dilations])
        self.head = nn.Conv2d(width, 1, 3, 1, 1)
        with torch.no_grad():  # starts keeping almost nothing: the blind fill
            self.head.weight.mul_(0.1)
            self.head.bias.fill_(-4.0)

    def forward(self, x: torch.Tensor, fill: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(self.stem(torch.cat([x, fill, mask], 1)))))


class GatedInpainter(nn.Module):
    def __init__(
        self,
        base: int = 32,
        dilations: tuple[int, ...] = (1, 2, 4, 8, 2, 4),
        sees_under: bool = False,
        keep_width: int = 24,
    ):
        super().__init__()
        self.dilations = tuple(dilations)
        self.keep = KeepHead(keep_width) if sees_under else None
        self.stem = GatedConv(4, base, k=5)
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
        """``blind`` (with ``sees_under``; True, per picture [B, 1, 1, 1] in {0, 1}, or per pixel
        [B, 1, H, W] in [0, 1]): fill without looking under the holes (the blind inpainter's fill),
        as for a curator's own mask; a share between 0 and 1 weakens the keep head in proportion."""
        h, w = x.shape[-2:]
        pad = (0, (-w) % 4, 0, (-h) % 4)
        xi, mi = (F.pad(t, pad, mode="replicate") if any(pad) else t for t in (x, mask))
        s0 = self.stem(torch.cat([xi * (1 - mi), mi], dim=1))
        s1 = self.down1(s0)
        feat = self.body(self.down2(s1))
        feat = self.up2(
            torch.cat([F.interpolate(feat, size=s1.shape[-2:], mode="bilinear", align_corners=False), s1], 1)
        )
        feat = self.up1(
            torch.cat([F.interpolate(feat, size=s0.shape[-2:], mode="bilinear", align_corners=False), s0], 1)
        )
        fill = torch.sigmoid(self.head(feat))
        if self.keep is not None and blind is not True:
            a = self.keep(xi, fill, mi)
            if torch.is_tensor(blind):
                if blind.shape[-2:] == (h, w) and any(pad):
                    blind = F.pad(blind, pad, mode="replicate")
                a = a * (1 - blind.to(a.dtype))
            fill = a * xi + (1 - a) * fill
        return x * (1 - mask) + fill[..., :h, :w] * mask


register_model("gated_inpainter")(GatedInpainter)
register_model("gated_inpainter_test", base=8, dilations=(1, 2))(GatedInpainter)
