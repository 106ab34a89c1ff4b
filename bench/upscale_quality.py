"""Enlargement quality on held-out photographs, for the shipped enlarger against bicubic and
Lanczos (Pillow's), and what it does to the real scans.

    .venv/bin/python bench/upscale_quality.py [--checkpoint DIR] [--scale 2] [--sheet PNG]

1. Realistic: each held-out photograph made ``scale`` times smaller by the training degradation
   (blur, resizing, noise, film grain, JPEG, often twice over: restoration.degrade.enlarge), four
   seeded plans per photograph that are not plain bicubic, twice: (a) with the ``scans`` preset
   (noise and JPEG as measured on real small scans of prints; the set issue 23's realistic goal is
   read on, since enlargers train on it from enlarge-x2 v3 on), (b) with Real-ESRGAN's ranges
   (noise to 15/255, JPEG down to quality 40: the set enlarge-x2 v1 and v2 were trained and judged on).
2. Plain bicubic: each photograph downscaled with an antialiased bicubic filter and nothing else
   (the classic benchmark; here a model trained on noisy inputs must do no worse than Lanczos).
PSNR and SSIM of the whole photograph (RGB, ``2 * scale`` border pixels left out) against the
original, for bicubic, Lanczos and the model run through the engine (tiled, as the pipeline runs
it). Then the model's cost in GFLOP per megapixel of output (torch.utils.flop_counter).
Goals (issue 23): x2 at least +1.5 dB over Lanczos on the realistic set, and not below Lanczos on
the plain bicubic set.

Held out: coffee, rocket, grace_hopper (scikit-image, matplotlib) and, where Debian's
mate-backgrounds is installed, GreenMeadow and Wood; none is trained on. With ``--sheet``, crops
of the real scans in ../shared/samples/old-photos/ (never trained on) enlarged by Lanczos and by
the model, side by side at 1:1, for looking at grain and faces.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.restore_quality import gflop_per_mp, held_out  # noqa: E402
from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.degrade.enlarge import PRESETS, EnlargeDegradation, apply_plan, sample_plan  # noqa: E402
from restoration.engine import EngineConfig, Restorer  # noqa: E402
from restoration.metrics import psnr, ssim  # noqa: E402

WEIGHTS = ROOT / "restoration" / "weights"
SCANS = ROOT.parent / "shared" / "samples" / "old-photos"
PLANS = 4  # realistic small copies per photograph


def shipped_enlarger(scale: int) -> Path:
    """The newest shipped enlarger of ``scale``, whatever its status (restoration/weights/shipped.json)."""
    manifest = json.loads((WEIGHTS / "shipped.json").read_text())
    found = [
        WEIGHTS / ref
        for ref in manifest
        if (WEIGHTS / ref / "card.json").is_file()
        and json.loads((WEIGHTS / ref / "card.json").read_text()).get("scale") == scale
    ]
    if not found:
        raise SystemExit(f"no shipped enlarger x{scale}; pass --checkpoint")
    return max(found, key=lambda p: (p.parent.name, int(p.name.removeprefix("v"))))


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float() / 255


def as_pixels(x: torch.Tensor) -> np.ndarray:
    return (x[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def pillow(small: np.ndarray, scale: int, how: str) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(small)
    method = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}[how]
    return np.asarray(im.resize((im.width * scale, im.height * scale), method))


NOISE = {"gaussian_noise", "poisson_noise", "film_grain"}


def kinds(plan: list[dict]) -> str:
    """What a plan holds beyond resizing: "blur", "noise", "JPEG" joined by "+", or "resize only"."""
    ops = {step["op"] for step in plan}
    held = [
        k
        for k, found in (("blur", "gaussian_blur" in ops), ("noise", ops & NOISE), ("JPEG", "jpeg" in ops))
        if found
    ]
    return "+".join(held) or "resize only"


def pairs(
    images: dict[str, np.ndarray], scale: int, preset: str | None
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, original, small) for every photograph, cut to a multiple of the scale, made small by
    the degradation ``preset`` (restoration.degrade.enlarge.PRESETS; None: plain bicubic); a
    realistic pair's name ends in ``#k|kinds`` (its plan's number and what the plan holds)."""
    config = EnlargeDegradation(**({"scale": scale, "plain": 0.0} | PRESETS.get(preset or "", {})))
    out = []
    for i, (name, img) in enumerate(sorted(images.items())):
        h, w = (d - d % scale for d in img.shape[:2])
        large = as_tensor(img[:h, :w])
        if preset is None:
            small = apply_plan(large, [{"op": "resize", "size": (h // scale, w // scale), "mode": "bicubic"}])
            out.append((name, img[:h, :w], as_pixels(small)))
            continue
        for k in range(PLANS):
            rng = np.random.default_rng([2026, i, k])
            plan = sample_plan(rng, (h, w), config)
            out.append((f"{name}#{k}|{kinds(plan)}", img[:h, :w], as_pixels(apply_plan(large, plan))))
    return out


def score(made: np.ndarray, original: np.ndarray, border: int) -> tuple[float, float]:
    a, b = as_tensor(made), as_tensor(original)
    a, b = (t[..., border:-border, border:-border] for t in (a, b))
    return psnr(a, b).item(), ssim(a, b).mean().item()


def table(
    title: str, rows: list[tuple[str, np.ndarray, np.ndarray]], methods: dict, scale: int
) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Print each method's PSNR per photograph and its mean PSNR and SSIM; returns the means and
    every row's PSNR per method (in ``rows``' order)."""
    print(f"\n{title}: {len(rows)} image(s)")
    names = sorted({n.split("#")[0] for n, _, _ in rows})
    print(f"{'':12s} " + " ".join(f"{n[:11]:>11s}" for n in names) + "   PSNR    SSIM")
    means, each = {}, {}
    for label, method in methods.items():
        scores: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
        each[label] = []
        for name, original, small in rows:
            made = score(method(small), original, 2 * scale)
            scores[name.split("#")[0]].append(made)
            each[label].append(made[0])
        per = [np.mean([p for p, _ in scores[n]]) for n in names]
        allp = float(np.mean([p for n in names for p, _ in scores[n]]))
        alls = float(np.mean([s for n in names for _, s in scores[n]]))
        means[label] = allp
        print(f"{label:12s} " + " ".join(f"{p:11.2f}" for p in per) + f" {allp:6.2f}  {alls:.4f}")
    return means, each


def by_kind(rows: list[tuple[str, np.ndarray, np.ndarray]], each: dict[str, list[float]], label: str) -> None:
    """The model's gain over Lanczos on the realistic copies, grouped by what their plans hold
    (every plan resizes): where the gain is made and where it is lost."""
    groups: dict[str, list[float]] = {}
    for (name, _, _), ours, lanczos in zip(rows, each[label], each["lanczos"], strict=True):
        groups.setdefault(name.split("|")[1], []).append(ours - lanczos)
    print(f"\n   {label} over Lanczos, by what the small copy went through:")
    for kind, gains in sorted(groups.items()):
        print(
            f"   {kind:20s} {len(gains):3d} copies  {np.mean(gains):+6.2f} dB (from {min(gains):+.2f} to {max(gains):+.2f})"
        )


def sheet(engine: Restorer, scale: int, out: Path, crop: int = 160) -> None:
    """Per real scan, a crop at its centre: Lanczos | model, each ``scale`` times larger, at 1:1."""
    from PIL import Image

    strips = []
    for path in sorted(SCANS.glob("*.png")):
        scan = np.asarray(Image.open(path).convert("RGB"))
        h, w = scan.shape[:2]
        y, x = max(0, h // 2 - crop // 2 - h // 8), max(0, w // 2 - crop // 2)  # faces sit above the centre
        part = np.ascontiguousarray(scan[y : y + crop, x : x + crop])
        made = engine.restore([part])[0].image
        strips.append(
            np.concatenate(
                [pillow(part, scale, "lanczos"), np.full((made.shape[0], 4, 3), 255, np.uint8), made], axis=1
            )
        )
    rows = [
        np.concatenate(strips[i : i + 2], axis=1) if i + 1 < len(strips) else strips[i]
        for i in range(0, len(strips), 2)
    ]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    Image.fromarray(np.concatenate(rows, axis=0)).save(out, optimize=True)
    print(
        f"\nwrote {out}: each real scan's centre crop, Lanczos (left) | model (right), x{scale}, two scans a row"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="default: the shipped enlarger of --scale"
    )
    parser.add_argument("--scale", type=int, choices=(2, 4), default=2)
    parser.add_argument("--sheet", type=Path, default=None, help="also write the real scans' sheet here")
    args = parser.parse_args()
    torch.manual_seed(0)
    model, card = load_checkpoint(args.checkpoint or shipped_enlarger(args.scale))
    scale = getattr(model, "scale", 1)
    if scale != args.scale:
        raise SystemExit(f"{card['name']}@{card['version']} enlarges x{scale}, not x{args.scale}")
    engine = Restorer(model, EngineConfig(tile=768))
    images = held_out()
    print(
        f"{card['name']}@{card['version']} (x{scale}) against bicubic and Lanczos, on held-out {', '.join(sorted(images))}"
    )
    methods = {
        "bicubic": lambda s: pillow(s, scale, "bicubic"),
        "lanczos": lambda s: pillow(s, scale, "lanczos"),
        f"{card['name']}@{card['version']}": lambda s: engine.restore([s])[0].image,
    }
    label = list(methods)[-1]
    started = time.perf_counter()
    gains = {}
    for section, preset, title in (
        ("1a", "scans", "realistic small copies as small scans of prints are (the scans preset)"),
        ("1b", "real-esrgan", "realistic small copies with Real-ESRGAN's ranges"),
        ("2", None, "plain bicubic downscaling"),
    ):
        rows = pairs(images, scale, preset)
        means, each = table(f"{section}. {title}", rows, methods, scale)
        if preset:
            by_kind(rows, each, label)
        gains[section] = means[label] - means["lanczos"]
    print(
        f"\n{'goals (x2)' if scale == 2 else f'x{scale} (the goals are set for x2)'}: "
        f"realistic (scans) {gains['1a']:+.2f} dB over Lanczos (>= +1.5); "
        f"plain bicubic {gains['2']:+.2f} dB over Lanczos (>= 0); "
        f"for comparison, realistic with Real-ESRGAN's ranges {gains['1b']:+.2f} dB"
    )
    print(
        f"cost: {gflop_per_mp(model) / scale**2:.1f} GFLOP per megapixel of output; {card['parameters']:,} parameters"
    )
    print(f"({time.perf_counter() - started:.0f} s)")
    if args.sheet:
        sheet(engine, scale, args.sheet)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
