"""Engine throughput against a naive full-frame forward, and peak memory on one big scan.

Prints, in one run on this machine: megapixels per second of the tiled, batched engine and of
a naive loop that runs the same model on each whole image at once, their ratio, and the peak
resident memory of a separate process restoring one synthetic scan of --megapixels (40 by
default). The weights do not change the speed, so the untrained default architecture is used.
With --null-model it first measures the engine's own cost: a model that returns its input,
over three 2000x3000 uint8 photographs (tiling, upload, blending, conversion; goal on a
2-core CPU: at least 150 MP/s), the median of five runs after a warm-up. Timings are medians
of --repeats runs, the engine's and the naive loop's in turn.

    .venv/bin/python bench/engine.py [--null-model] [--images 6] [--size 1024] [--megapixels 40] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _memory import peak_rss_mb  # noqa: E402

from restoration.engine import EngineConfig, NullModel, Restorer, resolve_device  # noqa: E402
from restoration.factory import create_model  # noqa: E402


def images(n: int, size: int) -> list[np.ndarray]:
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut())
    return [np.array(base.resize((size + 16 * i, size - 8 * i))) for i in range(n)]


@torch.inference_mode()
def naive(model, imgs: list[np.ndarray], device) -> float:
    t = time.perf_counter()
    for img in imgs:
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(device)
        out = model(x)[0].clamp(0, 1).mul(255).round().byte().cpu()
    if device.type == "cuda":
        torch.cuda.synchronize()
    del out
    return time.perf_counter() - t


def null_model(device, repeats: int, tile: int = 768) -> float:
    """MP/s of the engine around a model that does nothing, on three 2000x3000 uint8 photographs."""
    from PIL import Image
    from skimage import data

    base = Image.fromarray(data.astronaut())
    photos = [np.array(base.rotate(30 * i).resize((3000, 2000))) for i in range(3)]
    engine = Restorer(NullModel(), EngineConfig(tile=tile, device=str(device)))
    engine.restore(photos[:1])  # warm-up: buffers and bands
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = engine.restore(photos)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
        assert all(
            np.array_equal(r.image, p) for r, p in zip(out, photos, strict=True)
        )  # a true pass-through
        del out
    return 18.0 / float(np.median(times))


def big_scan(megapixels: float, device: str) -> None:
    """Child process: restore one scan of ``megapixels`` and report time and peak memory."""
    side = int((megapixels * 1e6) ** 0.5)
    rng = np.random.default_rng(0)
    scan = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    engine = Restorer(create_model("unet_restorer"), EngineConfig(device=device))
    t = time.perf_counter()
    engine.restore([scan])
    peak_kb = peak_rss_mb() * 1024
    print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": peak_kb / 1024, "side": side}))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--megapixels", type=float, default=40.0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--null-model", action="store_true", help="also the engine's own overhead")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each timing (the median is shown)")
    parser.add_argument("--big-scan-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.big_scan_child:
        big_scan(args.megapixels, args.device)
        return 0

    device = resolve_device(args.device)
    if args.null_model:
        for tile in (768, 1536):
            mps = null_model(device, max(args.repeats, 5), tile)
            print(
                f"null model (engine overhead), tile {tile}, 3 x 2000x3000 uint8: {mps:6.1f} MP/s (goal >= 150)"
            )
    model = create_model("unet_restorer").eval().to(device)
    imgs = images(args.images, args.size)
    mp = sum(i.shape[0] * i.shape[1] for i in imgs) / 1e6
    engine = Restorer(model, EngineConfig(device=str(device)))
    engine.restore(imgs[:1])  # warm-up (allocations, autotuning)
    naive(model, imgs[:1], device)

    naives, engines = [], []
    for _ in range(args.repeats):  # in turn, so that a slow spell of a shared machine hits both
        naives.append(naive(model, imgs, device))
        t = time.perf_counter()
        engine.restore(imgs)
        engines.append(time.perf_counter() - t)
    t_naive, t_engine = float(np.median(naives)), float(np.median(engines))
    print(
        f"device {device}, {args.images} images, {mp:.1f} MP, torch threads {torch.get_num_threads()}, "
        f"median of {args.repeats} runs each, in turn (ratios {', '.join(f'{n / e:.2f}' for n, e in zip(naives, engines, strict=True))})"
    )
    print(f"naive full-frame forward : {t_naive:7.2f} s  {mp / t_naive:6.2f} MP/s")
    print(f"engine (tiled, batched)  : {t_engine:7.2f} s  {mp / t_engine:6.2f} MP/s")
    print(f"ratio engine/naive = {t_naive / t_engine:.2f}  (goal >= 1.0)")

    child = subprocess.run(
        [
            sys.executable,
            __file__,
            "--big-scan-child",
            "--megapixels",
            str(args.megapixels),
            "--device",
            str(device),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    big = json.loads(child.stdout.strip().splitlines()[-1])
    print(
        f"one {args.megapixels:.0f} MP scan ({big['side']}x{big['side']}): {big['seconds']:.1f} s, "
        f"{args.megapixels / big['seconds']:.2f} MP/s, peak resident memory {big['peak_mb']:.0f} MB (goal < 2048)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
