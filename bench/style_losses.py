"""Do the style-training losses prefer the process that made the exemplars? A loss that scores a
network's rendering better than the process's own cannot teach the network the process.

For each style of a learned network whose exemplar sets are process emulations (preset=…), on the
same content crops (the style training's photographs), it prints the training losses of three
renderings: the input, the emulation that made the style's exemplars, and the network. Each loss
is computed both ways training can compute it: crop by crop (v1, v2) and with the batch's
statistics as a set (``--set-statistics``, v3), in batches of --batch crops. Lower is better;
a row where the network beats the emulation is a preference the losses teach. Measured on v2:
crop by crop, every term preferred v2's dimmed rendering (lifted shadows, dimmed highlights).

    .venv/bin/python bench/style_losses.py [--checkpoint restoration/weights/period-styles/v4] [--crops 32]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.cli.styles import CONTENT_PHOTOS, EXEMPLAR_PHOTOS  # noqa: E402
from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.data import bundled_images, random_crops  # noqa: E402
from restoration.styles.presets import PRESETS  # noqa: E402
from restoration.styles.training import StyleTrainConfig, StyleTrainer, preset_exemplars  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=ROOT / "restoration" / "weights" / "period-styles" / "v4"
    )
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    torch.set_grad_enabled(False)

    net, card = load_checkpoint(args.checkpoint)
    exemplars = card["data"]["exemplars"]
    styles = [s for s in card["styles"] if "preset" in exemplars[s]]
    photos = list(bundled_images(EXEMPLAR_PHOTOS).values())  # as `archive train style` takes them
    content = list(bundled_images(CONTENT_PHOTOS).values())
    sets = {s: preset_exemplars(exemplars[s]["preset"], photos) for s in styles}
    config = StyleTrainConfig(
        **{
            k: v
            for k, v in card["training"].items()
            if k in {f.name for f in dataclasses.fields(StyleTrainConfig)}
        }
    )
    trainer = StyleTrainer(config, sets, content, log=lambda _: None)
    x = random_crops(content, args.crops, config.crop, np.random.default_rng(5))
    print(
        f"{card['name']}@{card['version']}: {args.crops} crops of {config.crop} px from {', '.join(CONTENT_PHOTOS)}; "
        f"sets of {args.batch}; lower is better"
    )
    print(
        f"{'style':12s} {'rendering':10s} {'per crop: Gram':>14s} {'colour':>7s}   {'as sets: Gram':>13s} {'colour':>7s}"
    )
    for i, style in enumerate(styles):
        code = card["styles"].index(style)
        renderings = {
            "input": x,
            "emulation": PRESETS[exemplars[style]["preset"]].apply(x, 1.0).clamp(0, 1),
            "network": net(x, code).clamp(0, 1),
        }
        for label, out in renderings.items():
            row = []
            for as_set in (False, True):
                parts = [
                    trainer.statistics_losses(b, torch.full((len(b),), i), as_set)
                    for b in out.split(args.batch)
                ]
                row += [
                    float(np.mean([p[0].item() for p in parts])),
                    float(np.mean([p[1].item() for p in parts])),
                ]
            print(
                f"{style if label == 'input' else '':12s} {label:10s} {row[0]:14.4f} {row[1]:7.4f}   {row[2]:13.4f} {row[3]:7.4f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
