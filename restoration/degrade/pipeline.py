"""The degradation model: effects in random order with per-effect probabilities, in the spirit
of the published old-photo (Wan et al. 2020) and Real-ESRGAN (Wang et al. 2021) recipes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from restoration.degrade import aging, damage, tone

# Picture structures (not damage: part of the scene, no mask), applied before anything else:
# lattices, lettering, outlines (rims, hands, wires), glints (highlights on shiny things), blossoms
# (small white flowers) and emblems (stars, dots, badges): the thin bright lines and pale shapes a
# crack detector must leave.
SCENE = ("lattice", "lettering", "outlines", "glints", "blossoms", "emblems")
# Unstructured effects, applied next, in a random order per image.
TONE = (
    "gaussian_blur",
    "motion_blur",
    "resample",
    "fading",
    "yellowing",
    "sepia",
    "halftone",
    "vignette",
    "gaussian_noise",
    "poisson_noise",
    "speckle_noise",
    "film_grain",
)
# Translucent marks on the print (the picture still shows through: no mask), applied next.
STAINS = ("silvering", "fingerprints", "tape")
# Structural damage, applied after, so the mask marks exactly the pixels it destroyed.
DAMAGE = (
    "scratches",
    "dust",
    "cracks",
    "tears",
    "craquelure",
    "relief",
    "creases",
    "losses",
    "flaking",
    "foxing",
    "water_stain",
    "folds",
)
# The damaged print scanned or copied: blur, resampling, noise, grain and toning over the damage
# too (real cracks are soft, grainy and tinted like the print, not crisp paper-white). Each is its
# tone effect, drawn again; the mask still marks the damage, which stays destroyed.
SCAN = (
    "scan_gaussian_blur",
    "scan_resample",
    "scan_gaussian_noise",
    "scan_film_grain",
    "scan_yellowing",
    "scan_fading",
)
LAST = ("jpeg",)
_ALWAYS_DRAWN = ("scratches", "dust", "cracks", "tears", "jpeg")

DEFAULT_PROBABILITIES = {
    "gaussian_blur": 0.5,
    "motion_blur": 0.1,
    "resample": 0.3,
    "fading": 0.6,
    "yellowing": 0.5,
    "sepia": 0.3,
    "halftone": 0.05,
    "vignette": 0.4,
    "gaussian_noise": 0.4,
    "poisson_noise": 0.2,
    "speckle_noise": 0.1,
    "film_grain": 0.5,
    "scratches": 0.6,
    "dust": 0.6,
    "cracks": 0.3,
    "tears": 0.15,
    "jpeg": 0.4,
}


def effect(name: str) -> tuple[Callable, Callable]:
    """The (sample, apply) pair of an effect, by name."""
    name = name.removeprefix("scan_")
    module = aging if hasattr(aging, f"apply_{name}") else damage if name in DAMAGE else tone
    return getattr(module, f"sample_{name}"), getattr(module, f"apply_{name}")


@dataclass(frozen=True)
class DegradationConfig:
    probabilities: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PROBABILITIES))
    # Share of images left exactly as they are: training pairs that teach "do no harm".
    untouched: float = 0.0

    def __post_init__(self) -> None:
        unknown = set(self.probabilities) - set(SCENE + TONE + STAINS + DAMAGE + SCAN + LAST)
        if unknown:
            raise ValueError(f"unknown degradation effects: {sorted(unknown)}")

    def digest(self) -> str:
        """sha256 of the configuration, for model cards."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()

    @classmethod
    def only(cls, *names: str) -> DegradationConfig:
        """Every effect in ``names`` always, nothing else (for tests and ablations)."""
        return cls({name: 1.0 for name in names})


@dataclass
class Degraded:
    degraded: torch.Tensor  # [B, C, H, W] in [0, 1]
    clean: torch.Tensor  # the target
    mask: torch.Tensor  # [B, 1, H, W], 1 where structural damage destroyed the picture
    params: list[list[dict]]  # per image, the effects applied in order with their parameters


def sample_plan(rng: np.random.Generator, h: int, w: int, config: DegradationConfig) -> list[dict]:
    """Which effects one image gets, in which order, with which parameters."""
    prob = config.probabilities
    if config.untouched and rng.random() < config.untouched:
        return []
    chosen = [n for n in TONE if rng.random() < prob.get(n, 0.0)]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    # The first effects are drawn for whatever their probability, as they always were, so plans
    # of earlier mixtures (and the bench's held-out sets) replay exactly; later ones only when asked.
    drawn = {n: rng.random() < prob.get(n, 0.0) for n in _ALWAYS_DRAWN}
    drawn |= {n: rng.random() < prob[n] for n in STAINS + DAMAGE if n not in drawn and prob.get(n, 0.0) > 0}
    scan = [n for n in SCAN if prob.get(n, 0.0) > 0 and rng.random() < prob[n]]
    if len(scan) > 1:  # in a random order, drawn only when asked for (old plans replay)
        scan = [scan[i] for i in rng.permutation(len(scan))]
    chosen += [n for n in STAINS + DAMAGE if drawn.get(n)] + scan
    chosen += [n for n in LAST if drawn.get(n)]
    scene = [n for n in SCENE if prob.get(n, 0.0) > 0 and rng.random() < prob[n]]  # drawn last, applied first
    chosen = scene + chosen
    return [{"effect": n, **effect(n)[0](rng, h, w)} for n in chosen]


def apply_plan(
    img: torch.Tensor, plan: list[dict], visible: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply a recorded plan to [1, C, H, W]; the same plan always gives the same result.

    ``visible`` > 0 keeps in the mask only the pixels that a damage effect changed by more than
    that (in any channel): a paper-white crack across a white collar, or dust on a black coat,
    destroyed nothing a detector could see, and a detector taught to mark it learns to guess."""
    mask = torch.zeros(img.shape[0], 1, *img.shape[-2:], device=img.device, dtype=img.dtype)
    for step in plan:
        params = {k: v for k, v in step.items() if k != "effect"}
        out = effect(step["effect"])[1](img, params)
        if isinstance(out, tuple):
            out, m = out
            if visible > 0:
                m = m * ((out - img).abs().amax(dim=1, keepdim=True) > visible).to(m.dtype)
            mask = torch.maximum(mask, m.to(mask.dtype))
        img = out
    return img.clamp(0, 1), mask


def degrade(
    clean: torch.Tensor,
    seed: int | np.random.Generator,
    config: DegradationConfig | None = None,
    visible: float = 0.0,
) -> Degraded:
    """Degrade a batch [B, C, H, W] of clean images in [0, 1]; each image gets its own plan (its
    mask keeps only damage visible by more than ``visible``: see :func:`apply_plan`)."""
    config = config or DegradationConfig()
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    h, w = clean.shape[-2:]
    outs, masks, plans = [], [], []
    for one in clean.split(1):
        plan = sample_plan(rng, h, w, config)
        img, mask = apply_plan(one, plan, visible)
        outs.append(img)
        masks.append(mask)
        plans.append(plan)
    return Degraded(torch.cat(outs), clean, torch.cat(masks), plans)
