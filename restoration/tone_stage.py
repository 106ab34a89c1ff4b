"""The tone stage: fading, yellowing and casts undone by a correction fitted once per image, on a
preview of the whole picture, and applied to every pixel alike (so tiles still agree).

A network that sees one tile cannot tell a faded print from a misty scene; the whole picture
can say more (are its deepest shadows lifted? is its paper yellow?). ``fit`` measures a preview:

- ``auto`` (the default): black and white points on luminance, applied to every channel alike,
  so fading's lifted blacks and lost contrast are undone and hues are kept (a sepia print stays
  sepia, a yellowed one stays yellow). Only what lies beyond a natural print's range is corrected:
  a photograph whose shadows are near black and whose highlights are near white is left alone.
- ``neutral``: first a per-channel scaling that makes the highlights grey (casts, yellowed
  paper), and a print found to be monochrome (toned: its colour a function of its tone) made
  neutral grey; then what ``auto`` does.
- ``off``: nothing.

The fitted values (``ToneFit``) go into the version's sidecar, as a style's print curve does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import numpy as np
import torch

from restoration.degrade.tone import LUMA as _LUMA
from restoration.degrade.tone import luminance
from restoration.recipe import check_tone

# A print's natural range, measured on the previews of the project's clean photographs: most
# have their 0.5% luma quantile under 0.08 and their 99.5% over 0.86. Only the lift beyond the
# first (and, in a print whose blacks are lifted, the dimming beyond the second) is undone.
BLACK_FLOOR = 0.08
WHITE_CEILING = 0.9
LOW, HIGH = 0.005, 0.995  # the quantiles that stand for black and white (a few pixels are noise)
# Fading lifts a print's blacks so far and no further (to about 0.45 at the strongest the project
# models; the real faded scans in shared/samples are at 0.11-0.24): a picture whose darkest tones are
# lighter is a light subject (pale wood, a snowfield), and is left alone, tapering from LIGHT.
LIGHT, LIGHTEST = 0.35, 0.5
MAX_GAIN = 2.5  # the most contrast the levels may add (a nearly flat picture is not stretched to noise)
# Neutral: the highlights' colour (the brightest 2% of pixels) is made grey.
ANCHOR = 0.02
MIN_SPAN = 0.08  # a channel whose highlights are darker than this is not rebalanced
# A print is monochrome when, within each band of luminance, 95% of its pixels' chroma is within
# MONO_CHROMA of the band's (ramped down to none at MONO_COLOUR): it is then made grey. Measured
# on previews: greyscale photographs 0, toned prints among the real scans 0.008-0.024 and the
# synthetic sepia toning up to 0.041 (clipping), the real autochromes 0.048-0.055, colour
# photographs 0.036-0.58. Pale wood (0.019) is as monochrome as a toned print, and is made grey.
MONO_CHROMA, MONO_COLOUR = 0.025, 0.045


@dataclass(frozen=True)
class ToneFit:
    """One image's correction, applied by ``apply``: per-channel ``gains`` and ``offsets``
    (neutral: casts; identity in auto), desaturation by ``mono``, then levels ``black``..``white``
    (on every channel alike, or with ``keep_chroma`` on luminance alone)."""

    black: float = 0.0
    white: float = 1.0
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mono: float = 0.0
    keep_chroma: bool = False  # auto: the levels move luminance only, so chroma (and hue) stay
    mode: str = field(default="off", compare=False)
    estimator: str = field(default="classical", compare=False)

    def as_tensor(self) -> torch.Tensor:
        """The parameters as data (so a compiled model sees each image's as input, not constants)."""
        values = [*self.gains, *self.offsets, self.mono, self.black, self.white, float(self.keep_chroma)]
        return torch.tensor(values, dtype=torch.float32)

    @classmethod
    def from_tensor(cls, p: torch.Tensor, **labels) -> ToneFit:
        v = [float(x) for x in p.detach().cpu().float()]
        return cls(v[7], v[8], tuple(v[0:3]), tuple(v[3:6]), v[6], bool(v[9] > 0.5), **labels)

    def as_dict(self) -> dict:
        return {
            k: round(v, 5)
            if isinstance(v, float)
            else [round(x, 5) for x in v]
            if isinstance(v, tuple)
            else v
            for k, v in asdict(self).items()
        }


def white_balance(highlight: tuple[float, float, float]) -> tuple[float, float, float]:
    """Per-channel gains that make the colour ``highlight`` grey at its own luminance (a channel
    darker than ``MIN_SPAN`` there is left as it is)."""
    h = np.asarray(highlight, np.float64)
    gains = np.where(h >= MIN_SPAN, float(np.dot(LUMA, h)) / np.maximum(h, MIN_SPAN), 1.0)
    return tuple(float(g) for g in gains)


LUMA = np.array(_LUMA)
IDENTITY = ToneFit().as_tensor()


def apply(x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``ToneFit.as_tensor`` ``p`` applied to RGB images [B, 3, H, W] in [0, 1], pixel by pixel."""
    p = p.to(device=x.device, dtype=x.dtype)
    gains, offsets, mono, black, white, keep = p[0:3], p[3:6], p[6], p[7], p[8], p[9]
    y = x * gains.view(1, 3, 1, 1) + offsets.view(1, 3, 1, 1)
    lum = luminance(y)
    y = torch.lerp(y, lum.expand_as(y), mono)
    levels = (y - black) / (white - black)  # every channel alike: chroma scales with contrast
    shifted = y + ((lum - black) / (white - black) - lum)  # luminance alone moves (exactly y at identity)
    return torch.lerp(levels, shifted, keep).clamp(0, 1)


def quantiles(values: torch.Tensor, probs: list[float]) -> list[float]:
    v = values.flatten().float().sort().values
    return [float(v[round(q * (v.numel() - 1))]) for q in probs]


def fit(small: torch.Tensor, mode: str) -> ToneFit:
    """The correction for an image given by its preview ``small`` [1, 3, h, w] in [0, 1]."""
    if check_tone(mode) == "off":
        return ToneFit()
    small = small.float().clamp(0, 1)
    fitted: dict = {"mode": mode, "keep_chroma": mode == "auto"}
    if mode == "neutral":
        fitted |= _neutral(small)
        small = apply(small, ToneFit(**fitted).as_tensor())
    return ToneFit(**fitted, **_levels(luminance(small)))


def _neutral(small: torch.Tensor) -> dict:
    """Gains that make the highlights grey (yellowed paper, a cast), and how monochrome the print
    is. The shadows are not made grey: the darkest thing in a picture is often coloured (a cup of
    coffee, a dark green wood), and a scaling fixed at white leaves black black."""
    y = luminance(small).flatten()
    rgb = small.flatten(2)[0]  # [3, N]
    (hi,) = quantiles(y, [1 - ANCHOR])
    bright = y >= hi
    gains = (
        white_balance(tuple(float(v) for v in rgb[:, bright].mean(1))) if bright.any() else (1.0, 1.0, 1.0)
    )
    balanced = apply(small, ToneFit(gains=gains).as_tensor())
    return {"gains": gains, "mono": monochrome(balanced)}


def monochrome(x: torch.Tensor, bins: int = 32) -> float:
    """How surely [1, 3, h, w] is a monochrome print, toned or not (0..1): its colour is a function
    of its tone, so within each band of luminance the chroma hardly varies (95% of pixels within
    ``MONO_CHROMA`` of their band's mean: 1, ramped to 0 at ``MONO_COLOUR``)."""
    lum = luminance(x)
    y, c = lum.flatten(), (x - lum).flatten(2)[0]
    band = (y * bins).long().clamp(0, bins - 1)
    counts = torch.bincount(band, minlength=bins).clamp(min=1)
    mean = torch.zeros(3, bins).index_add_(1, band, c) / counts
    (spread,) = quantiles((c - mean[:, band]).abs().amax(0), [0.95])
    return float(np.clip((MONO_COLOUR - spread) / (MONO_COLOUR - MONO_CHROMA), 0.0, 1.0))


def _levels(y: torch.Tensor) -> dict:
    """Black and white points from luminance: a lift of the blacks past ``BLACK_FLOOR`` is taken
    away, and where the blacks were lifted, whites dimmed under ``WHITE_CEILING`` are restored."""
    lo, hi = quantiles(y, [LOW, HIGH])
    black = max(0.0, lo - BLACK_FLOOR) * light_taper(lo)
    white = min(1.0, hi + (1.0 - WHITE_CEILING)) if black > 0 else 1.0
    if white - black < 1.0 / MAX_GAIN:  # too flat to tell: stretch no more than MAX_GAIN
        mid = (white + black) / 2
        black, white = mid - 0.5 / MAX_GAIN, mid + 0.5 / MAX_GAIN
    return {"black": black, "white": white}


def light_taper(lo: float) -> float:
    """How much of a levels correction a picture whose darkest tones (0.5% luma quantile) are at
    ``lo`` may get: all below ``LIGHT``, none from ``LIGHTEST`` (a light subject, not fading)."""
    return float(np.clip((LIGHTEST - lo) / (LIGHTEST - LIGHT), 0.0, 1.0))


def blend(a: ToneFit, b: ToneFit, weight: float) -> ToneFit:
    """``a`` moved ``weight`` of the way to ``b``, parameter by parameter: two estimators whose
    errors differ (the learned one misreads what it was not shown, the quantile rules misread
    what their rules do not cover) are better averaged than either alone (measured for
    ``neutral``: restore-unet v9's card)."""
    mixed = torch.lerp(a.as_tensor(), b.as_tensor(), float(weight))
    return ToneFit.from_tensor(mixed, mode=a.mode, estimator=f"{a.estimator}+{b.estimator}")


def guarded(fit: ToneFit, small: torch.Tensor) -> ToneFit:
    """A learned estimate with the classical guard: the levels scaled back by ``light_taper``
    (measured: without it the learned estimator stretched held-out pale wood from 45 to 18 dB)."""
    (lo,) = quantiles(luminance(small.float().clamp(0, 1)), [LOW])
    k = light_taper(lo)
    return replace(fit, black=fit.black * k, white=1.0 - (1.0 - fit.white) * k)
