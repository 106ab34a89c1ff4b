"""The tone stage's learned estimator: from a preview of a whole picture, the correction
(``tone_stage.ToneFit`` as data) for ``neutral`` and for ``auto``.

A small strided CNN sees the picture at 128 x 128 (what it shows: a portrait, grass, a sky);
the quantiles of each channel and of luminance over the whole preview say where its blacks,
whites and casts lie. Both feed a two-layer head whose outputs are bounded to plausible
corrections (gains within e^±0.7, offsets within ±0.3, levels within half the range), so an
untrained or unsure estimator stays near the identity: its last layer starts at zero, biased
to no correction."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from restoration.degrade.tone import luminance
from restoration.registry import register_model

QUANTILES = 17
SIDE = 128


def quantile_features(x: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> [B, 4 * QUANTILES]: quantiles 0.5%..99.5% of R, G, B and luminance."""
    q = torch.linspace(0.005, 0.995, QUANTILES, device=x.device, dtype=x.dtype)
    f = torch.cat([x, luminance(x)], 1).flatten(2)
    return torch.quantile(f, q, dim=2).permute(1, 0, 2).flatten(1)


class ToneNet(nn.Module):
    def __init__(self, width: int = 32, hidden: int = 128):
        super().__init__()
        self.config = {"width": width, "hidden": hidden}  # what rebuilds it (a card's config)
        w = width
        self.cnn = nn.Sequential(
            nn.Conv2d(3, w, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
            nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, 2, 1),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(4 * w + 4 * QUANTILES, hidden), nn.ReLU(), nn.Linear(hidden, 11))
        nn.init.zeros_(self.head[-1].weight)
        with torch.no_grad():  # no correction to begin with: mono and the level shifts near 0
            self.head[-1].bias.copy_(torch.tensor([0.0] * 6 + [-4.0] * 5))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Previews [B, 3, H, W] in [0, 1] -> (neutral, auto) corrections, each [B, 10]."""
        small = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", antialias=True, align_corners=False)
        h = self.cnn(small * 2 - 1)
        o = self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3)), quantile_features(x)], 1))
        gains, offsets = torch.exp(0.7 * torch.tanh(o[:, 0:3])), 0.3 * torch.tanh(o[:, 3:6])
        mono = torch.sigmoid(o[:, 6:7])
        black_n, white_n = 0.5 * torch.sigmoid(o[:, 7:8]), 1 - 0.5 * torch.sigmoid(o[:, 8:9])
        black_a, white_a = 0.5 * torch.sigmoid(o[:, 9:10]), 1 - 0.5 * torch.sigmoid(o[:, 10:11])
        one, zero = torch.ones_like(mono), torch.zeros_like(mono)
        neutral = torch.cat([gains, offsets, mono, black_n, white_n, zero], 1)
        auto = torch.cat([one, one, one, zero, zero, zero, zero, black_a, white_a, one], 1)
        return neutral, auto


register_model("tone_net")(ToneNet)
register_model("tone_net_test", width=4, hidden=8)(ToneNet)
