"""The shipped restorer on the twelve real damaged scans in ../shared/samples/old-photos/ (never
trained on): a contact sheet of input | damage mask | restored, one scan a row, and the share of
each scan's pixels the mask marks (above 0.5) beside what a white top-hat detector flags, and, for a
staged restorer, the share of the restored scan its own detector still marks ("left": the traces
of cracks the restoration left, such as a thin bright ghost along a filled crack). A model
that takes a supplied mask gets a fourth column: restored with the top-hat's mask supplied, as a
curator's (crude) mask would be (`archive mask`, `restore-files --mask-dir`). A restorer with the
tone stage gets input | mask | tone=off | tone=auto | tone=neutral instead.

    .venv/bin/python bench/real_scans.py [--checkpoint DIR] [--out bench/results/real-scans.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.restore_quality import shipped  # noqa: E402
from restoration.baseline import tophat_restore  # noqa: E402
from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.engine import EngineConfig, Restorer, takes_mask  # noqa: E402

SCANS = ROOT.parent / "shared" / "samples" / "old-photos"
ROW = 300  # height of each row of the sheet


def main() -> int:
    from PIL import Image

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=shipped("newest"), help="default: the newest shipped restorer"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "real-scans.png")
    parser.add_argument("--scans", type=Path, default=SCANS)
    args = parser.parse_args()
    model, card = load_checkpoint(args.checkpoint)
    engine = Restorer(model, EngineConfig(tile=768))
    toned = card["architecture"] == "toned_restorer"
    if toned:
        from restoration.tone_runner import TonedRun

        runs = {tone: TonedRun(model, EngineConfig(tile=768), tone) for tone in ("off", "auto", "neutral")}
    rows = []
    print(f"{card['name']}@{card['version']} on {args.scans}")
    detector = _detector(model)
    print(f"{'scan':24s} {'size':>9s} {'mask > 0.5':>10s} {'top-hat':>8s} {'changed':>8s} {'left':>6s}")
    for path in sorted(args.scans.glob("*.png")):
        scan = np.asarray(Image.open(path).convert("RGB"))
        result = runs["off"].process([scan])[0] if toned else engine.restore([scan])[0]
        tophat = tophat_restore(scan.astype(np.float32) / 255)[1]
        changed = np.abs(result.image.astype(int) - scan).max(axis=2) > 8
        print(
            f"{path.name:24s} {scan.shape[1]:4d}x{scan.shape[0]:<4d} {(result.mask > 127).mean():10.1%} "
            f"{tophat.mean():8.1%} {changed.mean():8.1%} {_left(*detector, result.image) if detector else float('nan'):6.2%}"
        )
        mask = np.repeat(result.mask[..., None], 3, axis=2)  # uint8, 0..255
        columns = [scan, mask, result.image]
        if toned:
            for tone in ("auto", "neutral"):
                out = runs[tone].process([scan])[0]
                columns.append(out.image)
                fit = out.derived["tone"]
                print(
                    f"    {tone:8s} black {fit['black']:.3f} white {fit['white']:.3f} mono {fit['mono']:.2f}"
                )
        elif takes_mask(model):
            columns.append(engine.restore([scan], masks=[tophat])[0].image)
        strip = np.concatenate(columns, axis=1)
        width = round(strip.shape[1] * ROW / strip.shape[0])
        rows.append(np.asarray(Image.fromarray(strip).resize((width, ROW), Image.Resampling.LANCZOS)))
    sheet_w = max(r.shape[1] for r in rows)
    sheet = np.full((len(rows) * (ROW + 4), sheet_w, 3), 255, np.uint8)
    for i, r in enumerate(rows):
        sheet[i * (ROW + 4) : i * (ROW + 4) + ROW, : r.shape[1]] = r
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(args.out, optimize=True)
    extra = " | restored with the top-hat's mask supplied" if takes_mask(model) else ""
    extra = " (tone=off) | tone=auto | tone=neutral" if toned else extra
    print(f"wrote {args.out}: input | mask | restored{extra}, one scan a row")
    return 0


def _detector(model):
    """A staged restorer's detector and its views (behind the tone stage too); None for a single U-Net."""
    pipeline = getattr(model, "restorer", model)
    detect = getattr(pipeline, "detect", None)
    return (detect.eval(), pipeline.views) if detect is not None else None


def _left(detect, views: int, image: np.ndarray) -> float:
    """The share of a restored scan (uint8 RGB) that the detector marks above 0.5."""
    import torch

    from restoration.archs.pipeline import detect_probability

    x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    with torch.inference_mode():
        return (detect_probability(detect, x, views) > 0.5).float().mean().item()


if __name__ == "__main__":
    sys.exit(main())
