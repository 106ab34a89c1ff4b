"""Restoration quality on held-out images degraded by the project's model with a fixed seed.

Prints PSNR/SSIM of the degraded input, the classical baseline and the model, the damage-mask
F1 of both, and PSNR on undamaged clean inputs (restoration must do no harm), with the goals.

    .venv/bin/python bench/restore_quality.py [--checkpoint restoration/weights/restore-unet/v2]

Without --checkpoint it scores the version the release manifest (restoration/weights/shipped.json)
ships as production. Then, one effect at a time (probability 1, the others off), PSNR/SSIM of
input and model: where the model helps and where it does harm.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.data import VALIDATION_IMAGES, bundled_images, validation_set  # noqa: E402
from restoration.degrade import DegradationConfig  # noqa: E402
from restoration.training import RESTORE_PROBABILITIES, evaluate  # noqa: E402


def shipped_production() -> Path:
    weights = ROOT / "restoration" / "weights"
    manifest = json.loads((weights / "shipped.json").read_text())
    return weights / next(ref for ref, status in manifest.items() if status == "production")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=shipped_production())
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--crops", type=int, default=6, help="crops per held-out image")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--no-per-effect", action="store_true", help="skip the table of single effects")
    args = parser.parse_args()

    model, card = load_checkpoint(args.checkpoint)
    images = list(bundled_images(VALIDATION_IMAGES).values())
    val = validation_set(images, args.seed, args.size, args.crops, DegradationConfig(RESTORE_PROBABILITIES))
    with torch.inference_mode():
        m = evaluate(model, val, torch.device("cpu"), with_baseline=True)
    print(f"{card['name']}@{card['version']} on {len(val.clean)} held-out crops of {args.size}px "
          f"from {', '.join(VALIDATION_IMAGES)} (seed {args.seed})")
    print(f"{'':10s} {'PSNR':>8s} {'SSIM':>8s} {'mask F1':>8s}")
    print(f"{'input':10s} {m['input_psnr']:8.2f} {m['input_ssim']:8.4f}")
    print(f"{'baseline':10s} {m['baseline_psnr']:8.2f} {m['baseline_ssim']:8.4f} {m['baseline_mask_f1']:8.3f}")
    print(f"{'model':10s} {m['model_psnr']:8.2f} {m['model_ssim']:8.4f} {m['mask_f1']:8.3f}")
    print(f"model on undamaged clean inputs: PSNR {m['clean_psnr']:.2f} dB (goal >= 35)")
    gain_psnr, gain_ssim = m["model_psnr"] - m["input_psnr"], m["model_ssim"] - m["input_ssim"]
    print(f"gain over input: {gain_psnr:+.2f} dB (goal >= +3), SSIM {gain_ssim:+.4f} (goal >= +0.08); "
          f"vs baseline: {m['model_psnr'] - m['baseline_psnr']:+.2f} dB; mask F1 goal >= 0.7")
    if not args.no_per_effect:
        per_effect(model, images, args)
    return 0


def per_effect(model: torch.nn.Module, images: list, args: argparse.Namespace) -> None:
    """Each effect of the mixture alone on the same held-out crops (half as many per image)."""
    print(f"\none effect at a time ({max(args.crops // 2, 1) * len(images)} crops each)")
    print(f"{'effect':16s} {'input PSNR':>10s} {'model':>7s} {'gain':>6s}   {'input SSIM':>10s} {'model':>7s}")
    for effect in RESTORE_PROBABILITIES:
        val = validation_set(images, args.seed, args.size, max(args.crops // 2, 1), DegradationConfig({effect: 1.0}))
        with torch.inference_mode():
            m = evaluate(model, val, torch.device("cpu"), with_baseline=False)
        print(f"{effect:16s} {m['input_psnr']:10.2f} {m['model_psnr']:7.2f} {m['model_psnr'] - m['input_psnr']:+6.2f}   "
              f"{m['input_ssim']:10.4f} {m['model_ssim']:7.4f}")


if __name__ == "__main__":
    sys.exit(main())
