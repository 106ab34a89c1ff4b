"""Period-style quality on held-out images: how far each style moves them towards its exemplars.

For every preset and every style of the shipped learned network, on the held-out photographs
(never seen in training or in any exemplar set), it prints the distance to the style's exemplar
statistics before (the input) and after styling: Gram matrices of random-weight features
(measured with an extractor the network was not trained against) and per-channel colour
histograms (1-D Wasserstein), their ratios, the share of pixels whose colour the exemplars never
show at that tone (off the palette: a sepia print's purple saucer), and the SSIM of output and
input luminance. Goals: distances at least halved (ratio <= 0.5), luminance SSIM >= 0.6 for the
learned styles. Each learned style is measured as the pipeline applies it by default (printed
to its exemplars' tones, ``tone`` = ``runner.TONE_DEFAULT``; see ``styles.tone``) and without
(tone 0: the network's rendering alone), and halfway. As a baseline measured in the same run, each is
compared with per-channel histogram matching to the same exemplars. It also checks tiled against
whole-image output of the learned network, and writes a contact sheet (input | each style, the
learned ones as applied by default).

    .venv/bin/python bench/style_quality.py [--checkpoint restoration/weights/period-styles/v4]

Exemplars of a preset: the bundled photographs the learned network's exemplar sets are made of
(restoration/data.py), rendered by the preset.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cli.styles import EXEMPLAR_PHOTOS  # noqa: E402
from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.data import VALIDATION_IMAGES, bundled_images  # noqa: E402
from restoration.engine import EngineConfig  # noqa: E402
from restoration.styles.evaluate import StyleStats, eval_extractor, palette, style_report  # noqa: E402
from restoration.styles.features import mean_grams, quantiles  # noqa: E402
from restoration.styles.presets import PRESETS  # noqa: E402
from restoration.styles.runner import TONE_DEFAULT, LearnedStylist, PresetStylist, learned_params  # noqa: E402
from restoration.styles.training import preset_exemplars  # noqa: E402

SIDE = 384  # held-out images and exemplars are measured at this long side
CELL = 200  # contact-sheet cell height


def fit(img: np.ndarray, side: int = SIDE) -> np.ndarray:
    im = Image.fromarray(img)
    im.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(im)


def tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]


def stats(measure, images: list[np.ndarray]) -> StyleStats:
    """A style's statistics over a set of images of different sizes (Grams averaged per image)."""
    per = [mean_grams(measure, tensor(img)) for img in images]
    grams = [torch.stack([p[k] for p in per]).mean(0) for k in range(len(per[0]))]
    pixels = torch.cat([tensor(i).flatten(2) for i in images], 2)[..., None]
    return StyleStats(grams, quantiles(pixels), palette(pixels))


def match_histograms(img: np.ndarray, target_q: torch.Tensor) -> np.ndarray:
    """The classical baseline: each channel's values mapped to the exemplars' distribution."""
    x = tensor(img)[0]
    out = torch.empty_like(x)
    for c in range(3):
        flat = x[c].flatten()
        ranks = flat.argsort().argsort().float() / max(flat.numel() - 1, 1)
        pos = ranks * (target_q.shape[1] - 1)
        lo = pos.floor().long().clamp(max=target_q.shape[1] - 1)
        hi = (lo + 1).clamp(max=target_q.shape[1] - 1)
        out[c] = torch.lerp(target_q[c, lo], target_q[c, hi], pos - lo).reshape(x[c].shape)
    return (out.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def measure_row(
    measure, target: StyleStats, inputs: list[np.ndarray], outputs: list[np.ndarray]
) -> dict[str, float]:
    reports = [
        style_report(measure, target, tensor(i), tensor(o)) for i, o in zip(inputs, outputs, strict=True)
    ]
    mean = {k: float(np.mean([r[k] for r in reports])) for k in reports[0]}
    mean["gram_ratio"], mean["hist_ratio"] = (
        mean["gram_after"] / mean["gram_before"],
        mean["hist_after"] / mean["hist_before"],
    )
    return mean


def line(label: str, m: dict[str, float], goal: bool) -> str:
    ok = m["gram_ratio"] <= 0.5 and m["hist_ratio"] <= 0.5 and m["luma_ssim"] >= 0.6
    mark = ("  goals met" if ok else "  goals MISSED") if goal else ""
    return (
        f"{label:34s} {m['gram_before']:8.3f} {m['gram_after']:8.3f} {m['gram_ratio']:6.3f}   "
        f"{m['hist_before']:7.4f} {m['hist_after']:7.4f} {m['hist_ratio']:6.3f}   "
        f"{100 * m['off_palette_before']:5.1f}% {100 * m['off_palette_after']:5.1f}%   {m['luma_ssim']:6.3f}{mark}"
    )


def sheet(rows: list[list[tuple[str, np.ndarray]]], path: Path) -> None:
    cells = [
        [
            (label, Image.fromarray(img).resize((round(img.shape[1] * CELL / img.shape[0]), CELL)))
            for label, img in row
        ]
        for row in rows
    ]
    width = max(sum(c.width + 6 for _, c in row) for row in cells) + 6
    out = Image.new("RGB", (width, len(cells) * (CELL + 22) + 4), "white")
    draw = ImageDraw.Draw(out)
    for r, row in enumerate(cells):
        x, y = 6, r * (CELL + 22) + 4
        for label, c in row:
            out.paste(c, (x, y + 16))
            draw.text((x, y + 2), label, fill="black")
            x += c.width + 6
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=ROOT / "restoration" / "weights" / "period-styles" / "v4"
    )
    parser.add_argument("--sheet", type=Path, default=ROOT / "bench" / "out" / "style-contact-sheet.png")
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    held_out = [fit(img) for img in bundled_images(VALIDATION_IMAGES).values()]
    photos = [fit(img) for img in bundled_images(EXEMPLAR_PHOTOS).values()]
    measure = eval_extractor()
    print(
        f"held-out: {', '.join(VALIDATION_IMAGES)} at {SIDE}px; exemplar photographs: {', '.join(EXEMPLAR_PHOTOS)}"
    )
    print(
        f"{'style':34s} {'Gram: before':>8s} {'after':>8s} {'ratio':>6s}   {'colour: before':>7s} {'after':>7s} "
        f"{'ratio':>6s}   {'off-palette: before':>6s} {'after':>6s}   {'luma SSIM':>6s}"
    )
    rows = [[("input", img)] for img in held_out]
    for name, preset in PRESETS.items():
        target = stats(measure, preset_exemplars(name, photos))
        started = time.perf_counter()
        outputs = [PresetStylist(preset).style(img) for img in held_out]
        mp_s = sum(img.shape[0] * img.shape[1] for img in held_out) / 1e6 / (time.perf_counter() - started)
        print(
            line(
                f"preset {name} ({mp_s:.1f} MP/s)",
                measure_row(measure, target, held_out, outputs),
                goal=False,
            )
        )
        for row, out in zip(rows, outputs, strict=True):
            row.append((name, out))

    net, card = load_checkpoint(args.checkpoint)
    tones = [0.0] + ([0.5, TONE_DEFAULT] if learned_params(net, {}) else [])
    print(
        f"\nlearned: {card['name']}@{card['version']} ({card['parameters']:,} parameters, styles {', '.join(card['styles'])}; "
        f"tone {', '.join(map(str, tones))}: {tones[-1]} is the default)"
    )
    for label in card["styles"]:
        spec = card["data"]["exemplars"][label]
        if "preset" not in spec:
            print(f"  {label}: exemplars {spec} are not reproducible here; skipped")
            continue
        target = stats(measure, preset_exemplars(spec["preset"], photos))
        baseline = [match_histograms(img, target.quantiles) for img in held_out]
        print(
            line(
                f"  histogram matching to {label}",
                measure_row(measure, target, held_out, baseline),
                goal=False,
            )
        )
        for tone in tones:
            whole = LearnedStylist(
                net, card["styles"], label, config=EngineConfig(tile=2048, overlap=0), tone=tone
            )
            tiled = LearnedStylist(
                net, card["styles"], label, config=EngineConfig(tile=160, overlap=48), tone=tone
            )
            outputs = [r.image for r in whole.process(held_out)]
            diff = max(
                int(np.abs(a.astype(int) - r.image.astype(int)).max())
                for a, r in zip(outputs, tiled.process(held_out), strict=True)
            )
            print(
                line(
                    f"  learned {label}, tone {tone} (tiled vs whole: {diff}/255)",
                    measure_row(measure, target, held_out, outputs),
                    goal=True,
                )
            )
        for row, out in zip(rows, outputs, strict=True):
            row.append((f"learned:{label}", out))
    sheet(rows, args.sheet)
    print(f"\ncontact sheet: {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
