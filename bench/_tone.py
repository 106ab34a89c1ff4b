"""Section 5 of ``restore_quality.py``: faded, yellowed, toned and cast prints (issue 20).

Whole held-out pictures (long side ``SIDE``), since the tone stage is fitted on a whole picture,
each aged several times by fading, yellowing, sepia toning and colour casts (yellowing's draws
include casts of other colours) plus the usual damage. Reported: the input, a classical baseline
(per-channel auto-levels and grey-world, what an image editor's "auto" does), the tone stage
alone, and the shipped pipeline (the stage, then the restorer) at ``tone=auto`` and ``neutral``;
then clean photographs through the pipeline at ``auto``, with their colour difference (CIEDE2000),
and toned monochrome prints' chroma before and after.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.color import deltaE_ciede2000, rgb2lab

from restoration import tone_stage
from restoration.degrade.pipeline import DegradationConfig, apply_plan, sample_plan
from restoration.degrade.tone import apply_fading, apply_sepia, luminance
from restoration.metrics import psnr
from restoration.styles.tone import preview

SIDE = 384
AGED = DegradationConfig(
    {
        "fading": 0.8,
        "yellowing": 0.6,
        "sepia": 0.35,
        "film_grain": 0.4,
        "gaussian_blur": 0.3,
        "scratches": 0.4,
        "dust": 0.4,
    }
)


def pictures(images: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Each image scaled to long side SIDE and cut to a multiple of 16 (the restorer's alignment)."""
    out = {}
    for name, img in images.items():
        x = preview(img, SIDE).clamp(0, 1)
        h, w = (s // 16 * 16 for s in x.shape[-2:])
        out[name] = x[..., :h, :w]
    return out


AGEING = ("fading", "yellowing", "sepia")


def aged_copies(x: torch.Tensor, rng: np.random.Generator, count: int) -> list[torch.Tensor]:
    """``count`` aged copies of one picture, each with at least one of AGEING in its plan: a copy
    the draw left without fading, yellowing or toning is drawn again (seeded, so the set replays).
    It is not a faded print, and one left untouched would score an unbounded PSNR (the clamp's
    120 dB) that swamps the mean of the rest."""
    copies = []
    h, w = x.shape[-2:]
    while len(copies) < count:
        plan = sample_plan(rng, h, w, AGED)
        if any(step["effect"] in AGEING for step in plan):
            copies.append(apply_plan(x, plan)[0])
    return copies


def auto_levels_grey_world(x: torch.Tensor) -> torch.Tensor:
    """Per-channel levels at the 0.5% and 99.5% quantiles, then grey-world gains."""
    flat = x.flatten(2)
    lo, hi = flat.quantile(0.005, dim=2), flat.quantile(0.995, dim=2)
    y = ((x - lo[..., None, None]) / (hi - lo).clamp(min=1e-3)[..., None, None]).clamp(0, 1)
    means = y.flatten(2).mean(2)
    return (y * (means.mean(1, keepdim=True) / means.clamp(min=1e-3))[..., None, None]).clamp(0, 1)


def staged(mode: str, toned: torch.nn.Module, restore: bool = False):
    """The model's tone stage (its own estimator) fitted on the picture and applied, then (with
    ``restore``) its restorer."""

    def run(x: torch.Tensor) -> torch.Tensor:
        out = tone_stage.apply(x, toned.fit(x, mode).as_tensor())
        if not restore:
            return out
        with torch.inference_mode():
            return toned.restorer(out)[0].float().clamp(0, 1)

    return run


def classical(mode: str):
    """The stage with the quantile rules alone (the comparison the issue asks for)."""
    return lambda x: tone_stage.apply(x, tone_stage.fit(x, mode).as_tensor())


def mean_psnr(pairs) -> float:
    return float(np.mean([psnr(a, b).item() for a, b in pairs]))


def section(
    toned: torch.nn.Module, name: str, images: dict[str, np.ndarray], seed: int, per_image: int = 6
) -> None:
    clean = pictures(images)
    rng = np.random.default_rng([seed, 20])
    aged = [(y, x) for x in clean.values() for y in aged_copies(x, rng, per_image)]
    source = [n for n in clean for _ in range(per_image)]
    methods = {
        "input": lambda x: x,
        "auto-levels + grey-world": auto_levels_grey_world,
        "tone stage, auto": staged("auto", toned),
        "tone stage, neutral": staged("neutral", toned),
        "  classical estimator alone, auto": classical("auto"),
        "  classical estimator alone, neutral": classical("neutral"),
        f"{name}, tone=off": staged("off", toned, restore=True),
        f"{name}, tone=auto": staged("auto", toned, restore=True),
        f"{name}, tone=neutral": staged("neutral", toned, restore=True),
    }
    print(
        f"\n5. faded, yellowed, toned and cast prints: {len(aged)} whole pictures (long side {SIDE}), "
        f"seed {seed}, each with fading, yellowing or toning; PSNR against the clean picture"
    )
    base = mean_psnr(aged)
    scores = {}
    short = [n.removeprefix("mate:").removesuffix(".jpg")[:11] for n in clean]
    print(f"{'':34s} {'all':>6s}  {'gain':>6s}   " + " ".join(f"{n:>11s}" for n in short))
    for label, run in methods.items():
        each = [psnr(run(x), c).item() for x, c in aged]
        scores[label] = float(np.mean(each))
        by = [np.mean([e for e, s in zip(each, source, strict=True) if s == n]) for n in clean]
        print(
            f"{label:34s} {scores[label]:6.2f}  {scores[label] - base:+6.2f}   "
            + " ".join(f"{b:11.2f}" for b in by)
        )
    gain = scores[f"{name}, tone=neutral"] - base
    print(f"goal: tone=neutral >= +5 dB over the input: {gain:+.2f} dB")

    print(f"\n   clean photographs through {name} at tone=auto: PSNR against the input, mean CIEDE2000")
    print(f"{'':24s} {'off PSNR':>9s} {'auto PSNR':>9s} {'auto dE':>8s}  black  white  {'neutral PSNR':>12s}")
    auto, off = staged("auto", toned, restore=True), staged("off", toned, restore=True)
    neutral = staged("neutral", toned, restore=True)
    results = []
    for label, x in clean.items():
        fit = toned.fit(x, "auto")
        out = auto(x)
        de = deltaE_ciede2000(
            rgb2lab(x[0].permute(1, 2, 0).numpy()), rgb2lab(out[0].permute(1, 2, 0).numpy())
        )
        results.append(psnr(out, x).item())
        print(
            f"{label.removeprefix('mate:'):24s} {psnr(off(x), x).item():9.2f} {results[-1]:9.2f} "
            f"{de.mean():8.2f}  {fit.black:.3f}  {fit.white:.3f}  {psnr(neutral(x), x).item():12.2f}"
        )
    print(
        f"goal: >= 38 dB on clean photographs at tone=auto: mean {np.mean(results):.2f}, lowest {min(results):.2f}"
    )

    print("\n   toned monochrome prints (each picture grey, sepia-toned; and also faded): mean chroma")
    changes = []
    for label, x in clean.items():
        grey = luminance(x).expand(-1, 3, -1, -1)
        for how, toned_print in (
            ("toned", apply_sepia(grey, {"strength": 1.0})),
            (
                "toned, faded",
                apply_fading(apply_sepia(grey, {"strength": 1.0}), {"lift": 0.15, "contrast": 0.7}),
            ),
        ):
            c0 = chroma(toned_print)
            c1, c2 = chroma(auto(toned_print)), chroma(staged("neutral", toned, restore=True)(toned_print))
            changes.append(c1 / c0 - 1)
            print(
                f"{label.removeprefix('mate:'):16s} {how:13s} input {c0:.4f}  auto {c1:.4f} ({c1 / c0 - 1:+.1%})  neutral {c2:.4f}"
            )
    print(f"goal: chroma changes by under 10% at tone=auto: largest change {max(changes, key=abs):+.1%}")


def chroma(x: torch.Tensor) -> float:
    return float((x - luminance(x)).abs().mean())
