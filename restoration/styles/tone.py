"""Printing to the collection's tonal range: a learned style's output takes on the tonal
distribution of its exemplar set, as a printer fitted each negative to the paper and to the
house look by choosing the exposure and the contrast grade.

The network renders a process (its tone curve, toning, texture) and, like the process, keeps
each scene's own distribution of tones: a night sky stays dark, a bright table stays bright.
The prints of a period collection share a tonal range whatever their scenes. So, measured on
held-out photographs, the rendering alone leaves much of the colour-histogram distance to the
exemplar set (period-styles v3: 0.56 and 0.79 of the input's for albumen and autochrome; the
process emulations that made the exemplars: 0.63 and 1.01).

Per image, on a copy of the whole image scaled to at most ``PREVIEW`` px (one curve per image,
so tiles agree):
1. the network renders the copy, which measures its tone response (luma quantiles in and out);
2. the output should have the exemplar set's luma quantiles (``StyleNet.tones``, stored with the
   weights); inverting the measured response gives the input tones that produce them;
3. a print curve (gamma, gain and lift: a printer's contrast grade, exposure and flare, three
   numbers) is fitted to that map by least squares and applied to the input's luminance before
   the network (hues kept), blended with the identity by ``amount``.
Full histogram matching would fit the map exactly, and stretch noise and banding wherever the
image has few tones (a smooth sky, a dark uniform): the bench's histogram-matching baseline
shows the cost in colours off the palette. A three-number curve cannot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from restoration.archs.stylenet import TONE_QUANTILES
from restoration.degrade.tone import luminance
from restoration.engine import _dtype, _scale

PROBS = torch.linspace(0.01, 0.99, TONE_QUANTILES)  # the extremes are a few pixels' noise
PREVIEW = 512  # long side of the copy the curve is fitted on
# Beyond these a print curve distorts the picture: at gamma 3 (the fit's choice in a range to 3) a
# high-key portrait among the real old photographs came out low-key, its face dark.
GAMMAS = np.exp(np.linspace(np.log(0.5), np.log(2.0), 61))


def luma_quantiles(x: torch.Tensor) -> torch.Tensor:
    """Quantiles ``PROBS`` of the luminance of RGB images [B, 3, H, W] in [0, 1], pooled."""
    y = luminance(x.float()).flatten().sort().values
    idx = (PROBS.to(y.device) * (y.numel() - 1)).round().long()
    return y[idx].cpu()


def collection_tones(images: list[np.ndarray], side: int = 256) -> torch.Tensor:
    """The tonal distribution of a set of images (uint8/uint16 or float [H, W, 3]): luma quantiles
    of all their pixels pooled, each image scaled to at most ``side`` px so none outweighs the
    rest by its size. Pooled, as training's set statistics pool the exemplars' histograms: the
    mean of each image's quantiles (the "typical print") would lift the blacks and dim the
    whites of every print to those of the average one."""
    return luma_quantiles(torch.cat([preview(img, side).flatten(2) for img in images], 2)[..., None])


def preview(img: np.ndarray, side: int = PREVIEW) -> torch.Tensor:
    """An image array [H, W, C>=3] (uint8, uint16 or float) as a float tensor [1, 3, h, w] in
    [0, 1] whose long side is at most ``side`` (antialiased). A big scan is first subsampled to
    at most four times that, so memory stays bounded, not a float copy of the whole scan."""
    h, w = img.shape[:2]
    step = max(1, max(h, w) // (4 * side))
    part = img[::step, ::step, :3]
    x = torch.from_numpy(np.ascontiguousarray(part, dtype=np.float32) / _scale(_dtype(part))).permute(
        2, 0, 1
    )[None]
    h, w = x.shape[-2:]
    if max(h, w) <= side:
        return x
    size = (max(1, round(h * side / max(h, w))), max(1, round(w * side / max(h, w))))
    return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)


@dataclass(frozen=True)
class PrintCurve:
    """``gain * y ** gamma + lift``, clipped to [0, 1] and blended with y by ``amount``, on the
    luminance y; each pixel's RGB is scaled by the ratio, so hues stay. Gamma comes first, so the
    curve's slope is finite everywhere but at true black: a levels curve (black point, then
    gamma) below 1 rises vertically at its black point, which drew a hard edge across a dark sky.
    The same curve on each channel would clip a blue sky's red channel and shift hues."""

    gamma: float = 1.0
    gain: float = 1.0
    lift: float = 0.0
    amount: float = 0.0

    def curve(self, y: torch.Tensor | np.ndarray):
        if isinstance(y, np.ndarray):
            return np.clip(self.gain * y**self.gamma + self.lift, 0.0, 1.0)
        return (self.gain * y.clamp(min=0) ** self.gamma + self.lift).clamp(0, 1)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.amount == 0 else apply_curve(x, self.as_tensor())

    def as_tensor(self) -> torch.Tensor:
        return torch.tensor([self.gamma, self.gain, self.lift, self.amount])

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 5) for k, v in asdict(self).items()}


def apply_curve(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``PrintCurve.apply`` with the curve as a tensor (gamma, gain, lift, amount), so a compiled
    network sees a new image's curve as data, not as constants to recompile for. At amount 0 it
    returns x exactly."""
    y = luminance(x)
    toned = torch.lerp(y, (p[1] * y.clamp(min=0) ** p[0] + p[2]).clamp(0, 1), p[3])
    return torch.where(y > 1e-4, x * (toned / y.clamp(min=1e-4)), x + (toned - y)).clamp(0, 1)


def fit_curve(tones_in: np.ndarray, tones_out: np.ndarray) -> tuple[float, float, float]:
    """(gamma, gain, lift) whose curve maps ``tones_in`` closest to ``tones_out`` (least squares).
    For each gamma of a grid the curve is linear in ``tones_in ** gamma``: gain and lift come
    from a straight-line fit to the tones it does not clip; the gamma with the least error
    (clipping included) wins."""
    x, y = (
        np.clip(np.asarray(tones_in, np.float64), 0.0, 1.0),
        np.clip(np.asarray(tones_out, np.float64), 0.0, 1.0),
    )
    inside = (y > 1e-4) & (y < 1 - 1e-4)
    if inside.sum() < 3 or np.ptp(x[inside]) < 1e-6:
        return 1.0, 1.0, 0.0
    best = (np.inf, 1.0, 1.0, 0.0)
    for g in GAMMAS:
        gain, lift = np.polyfit(x[inside] ** g, y[inside], 1)
        if gain <= 1e-3:
            continue
        err = float(((PrintCurve(g, gain, lift).curve(x) - y) ** 2).mean())
        if err < best[0]:
            best = (err, float(g), float(gain), float(lift))
    return best[1:]


def match_print(
    render: Callable[[torch.Tensor], torch.Tensor], small: torch.Tensor, target: torch.Tensor, amount: float
) -> PrintCurve:
    """The print curve, at ``amount``, that brings ``render``'s output for an image, given by its
    ``preview`` ``small``, to the luma quantiles ``target``."""
    if amount == 0:
        return PrintCurve()
    q_in, q_out = luma_quantiles(small).numpy(), luma_quantiles(render(small).clamp(0, 1)).numpy()
    # The network's tone response, measured: output quantile k comes from input quantile k. It is
    # monotone in practice; a tiny ramp makes it strictly so for interpolation.
    q_out = np.maximum.accumulate(q_out) + np.linspace(0, 1e-6, q_out.size)
    wanted_in = np.interp(target.numpy(), q_out, q_in)
    return PrintCurve(*fit_curve(q_in, wanted_in), amount=amount)
