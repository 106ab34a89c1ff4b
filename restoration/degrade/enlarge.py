"""Low-resolution inputs for training (and judging) an enlarger: a clean photograph made small the
way small scans are, in the second-order manner of Real-ESRGAN (Wang et al. 2021): blur, a
resize, noise (Gaussian, Poisson or the project's film grain) and JPEG, then often all of it
again, and a last resize to the exact small size with JPEG before or after it. A share of pairs
is plain bicubic downscaling, so the model still does its best on clean, well-made small scans.

A plan is a list of JSON-safe steps, drawn from a seeded generator: the same seed gives the same
small image, and the plan is provenance (a training batch's recipe, a benchmark's held-out set).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from restoration.degrade import tone

MODES = ("area", "bilinear", "bicubic")


@dataclass(frozen=True)
class EnlargeDegradation:
    scale: int = 2
    plain: float = 0.2  # share of pairs that are plain bicubic downscaling, nothing else
    second_order: float = 0.5  # chance of a second round of blur, resize and noise
    blur: float = 0.7  # chance of a first blur (the second round's is 0.8 of it)
    blur_sigma: tuple[float, float] = (0.2, 1.5)  # at the large image's scale, for ×2
    resize: tuple[float, float] = (0.5, 1.3)  # each round's resize, of the size it meets
    noise: float = 0.6  # chance of noise in a round
    gaussian_sigma: tuple[float, float] = (1 / 255, 15 / 255)
    grain: float = 0.3  # of the noise drawn: the share that is film grain (the rest Gaussian/Poisson)
    jpeg: float = 0.6  # chance of a JPEG round (first round, and again at the end)
    jpeg_quality: tuple[int, int] = (40, 95)
    photons: tuple[float, float] = (2.3, 3.6)  # Poisson noise: log10 of the photons at full white

    def __post_init__(self) -> None:
        if self.scale not in (2, 4):
            raise ValueError(f"an enlarger's scale is 2 or 4, not {self.scale}")

    def digest(self) -> str:
        """sha256 of the configuration, for model cards."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


# Small copies as small scans of prints are made, measured on the twelve real scans in
# ../shared/samples/old-photos/ (never trained on): their noise, by Immerkaer's estimate (which also
# counts fine texture), is 0.9-6.2 levels of 255, where the clean held-out photographs read 0.7-4.9;
# two of the twelve show 8-pixel JPEG blocking (a column-difference ratio of 1.30 and 1.48 at the
# block edges; the rest 1.04-1.15, as clean JPEG photographs read). So: Gaussian noise to 6/255,
# Poisson noise of 1,000-10,000 photons at white (1.8-5.7 levels at mid-grey), JPEG at quality
# 60-95 and less often, a milder blur and resizing, a second round less often. Real-ESRGAN's ranges
# (the defaults above: noise to 15/255, JPEG down to 40) were made for photographs from the web.
SCANS = {
    "second_order": 0.3,
    "blur_sigma": (0.2, 1.2),
    "resize": (0.6, 1.2),
    "noise": 0.5,
    "gaussian_sigma": (1 / 255, 6 / 255),
    "photons": (3.0, 4.0),
    "jpeg": 0.4,
    "jpeg_quality": (60, 95),
}
PRESETS = {"scans": SCANS, "real-esrgan": {}}


def _noise(rng: np.random.Generator, c: EnlargeDegradation, weaker: float) -> dict:
    kind = rng.random()
    if kind < c.grain:
        return {"op": "film_grain", **tone.sample_film_grain(rng, 0, 0)}  # its draws need no size
    if kind < c.grain + (1 - c.grain) * 0.7:
        lo, hi = c.gaussian_sigma
        return {
            "op": "gaussian_noise",
            "sigma": float(rng.uniform(lo, hi * weaker)),
            "gray": bool(rng.random() < 0.4),
            "seed": int(rng.integers(0, 2**31 - 1)),
        }
    return {
        "op": "poisson_noise",
        "photons": float(10 ** rng.uniform(*c.photons)),
        "seed": int(rng.integers(0, 2**31 - 1)),
    }


Size = int | tuple[int, int]  # a square's side, or (height, width)


def _times(size: Size, factor: float) -> Size:
    if isinstance(size, int):
        return max(8, round(size * factor))
    return tuple(max(8, round(s * factor)) for s in size)


def _round(
    rng: np.random.Generator, c: EnlargeDegradation, size: Size, second: bool
) -> tuple[list[dict], Size]:
    steps: list[dict] = []
    if rng.random() < c.blur * (0.8 if second else 1.0):
        lo, hi = c.blur_sigma
        steps.append({"op": "gaussian_blur", "sigma": float(rng.uniform(lo, hi * (0.6 if second else 1.0)))})
    size = _times(size, float(rng.uniform(*c.resize)))
    steps.append({"op": "resize", "size": size, "mode": str(rng.choice(MODES))})
    if rng.random() < c.noise:
        steps.append(_noise(rng, c, 0.6 if second else 1.0))
    if not second and rng.random() < c.jpeg:
        steps.append({"op": "jpeg", "quality": int(rng.integers(*c.jpeg_quality))})
    return steps, size


def sample_plan(rng: np.random.Generator, large: Size, c: EnlargeDegradation) -> list[dict]:
    """The steps that make a ``large``-pixel square crop (or an image of ``(height, width)``, whose
    sides the scale divides) ``c.scale`` times smaller."""
    small = large // c.scale if isinstance(large, int) else (large[0] // c.scale, large[1] // c.scale)
    if rng.random() < c.plain:
        return [{"op": "resize", "size": small, "mode": "bicubic"}]
    steps, size = _round(rng, c, large, second=False)
    if rng.random() < c.second_order:
        more, size = _round(rng, c, size, second=True)
        steps += more
    last = {"op": "resize", "size": small, "mode": str(rng.choice(MODES))}
    if rng.random() < c.jpeg:
        jpeg = {"op": "jpeg", "quality": int(rng.integers(*c.jpeg_quality))}
        steps += [jpeg, last] if rng.random() < 0.5 else [last, jpeg]
    else:
        steps.append(last)
    return steps


def resize(img: torch.Tensor, size: int | tuple[int, int], mode: str) -> torch.Tensor:
    """Resize [B, C, H, W]; bilinear and bicubic are antialiased when they shrink (as PIL's are)."""
    size = (size, size) if isinstance(size, int) else size
    if mode == "area" and size[0] <= img.shape[-2] and size[1] <= img.shape[-1]:
        return F.interpolate(img, size=size, mode="area")
    mode = "bilinear" if mode == "area" else mode  # area only shrinks
    return F.interpolate(img, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)


def apply_plan(img: torch.Tensor, plan: list[dict]) -> torch.Tensor:
    """Apply a plan to [1, C, H, W] in [0, 1]; the result is quantised to 8 bits, as a scan is."""
    for step in plan:
        p = {k: v for k, v in step.items() if k != "op"}
        if step["op"] == "resize":
            img = resize(img, p["size"], p["mode"])
        else:
            img = getattr(tone, f"apply_{step['op']}")(img, p)
    return (img.clamp(0, 1) * 255).round() / 255


def make_small(
    large: torch.Tensor, rng: np.random.Generator, c: EnlargeDegradation
) -> tuple[torch.Tensor, list[list[dict]]]:
    """Each square crop of [B, C, S, S] made ``c.scale`` times smaller by its own plan."""
    plans = [sample_plan(rng, large.shape[-1], c) for _ in range(large.shape[0])]
    small = torch.cat([apply_plan(one, plan) for one, plan in zip(large.split(1), plans, strict=True)])
    return small, plans
