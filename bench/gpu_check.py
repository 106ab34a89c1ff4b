"""One command that checks and times every CUDA path of the restorer on a lent GPU machine.

It needs nothing but the ``restoration`` package and its shipped weights (a lent machine has
torch, torchvision, numpy, Pillow, safetensors, scikit-image, SciPy and OpenCV, but not Prefect
or SQLAlchemy, and reaches no network), prints as it goes (run it with PYTHONUNBUFFERED=1; a pipe's buffer is
lost when a command is killed), rewrites the JSON file after every section, and prints a table
last. Sections:

- types: uint8, uint16, float, grey and RGBA through the engine on the device against the CPU (a
  null model exactly, the production restorer within a level), float masks, and a uint8 tensor
  already on the device against the same pixels as a numpy array;
- parity: each shipped model through the engine with autocast (bf16, fp16) and float32 on the
  device, against float32 on the CPU: max abs difference in 8-bit levels and PSNR;
- tiles: tiled against whole on the device, in the engine's default dtype;
- jpeg: nvJPEG decode (torchvision on CUDA) against Pillow: difference and MP/s;
- train: the same training steps on the device and on the CPU (same seed, same batches): the
  device's loss must stay within 3x of the CPU's at the same steps, and finite;
- speed (last: it spends what is left of --budget): MP/s of the model alone (a batch of tiles),
  the engine (``Restorer.restore`` on photographs held in memory, uint8 in and out), a naive
  full-frame forward, and the engine around a model that does nothing; for the production
  restorer, the candidate and the production style, eager, then the production ones compiled
  (and the restorer with CUDA graphs) while the budget lasts; a restorer with the tone stage also
  as ``archive restore`` runs it (tone=auto: a fit and an engine run per picture, so no tiles of
  two pictures share a batch);
- memory: peak device memory of each section.

    PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --json $OUT/gpu_check.json    # a lent GPU, < 4 min
    python3 bench/gpu_check.py --device cpu --small --json /tmp/gpu_check.json   # anywhere, < 2 min
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from restoration.checkpoints import load_checkpoint  # noqa: E402
from restoration.engine import EngineConfig, NullModel, Restorer  # noqa: E402

WEIGHTS = ROOT / "restoration" / "weights"


class Check:
    """Results, written to the JSON file after every section; the table printed at the end."""

    def __init__(self, path: Path, budget: float):
        self.path, self.budget, self.started = path, budget, time.perf_counter()
        self.results: dict = {"sections": {}, "rows": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.elapsed()

    def row(self, section: str, item: str, value, unit: str = "", status: str = "") -> None:
        self.results["rows"].append(
            {"section": section, "item": item, "value": value, "unit": unit, "status": status}
        )
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        print(f"[{self.elapsed():6.1f}s] {section:8s} {item:58s} {shown:>12s} {unit:6s} {status}", flush=True)

    def save(self) -> None:
        self.results["seconds"] = round(self.elapsed(), 1)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def table(self) -> str:
        lines = [f"{'section':8s} {'item':58s} {'value':>12s} {'unit':6s} status"]
        for r in self.results["rows"]:
            v = r["value"]
            shown = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"{r['section']:8s} {r['item']:58s} {shown:>12s} {r['unit']:6s} {r['status']}")
        return "\n".join(lines)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_mb(device: torch.device) -> float:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")


def photographs(n: int, h: int, w: int) -> list[np.ndarray]:
    """Real photographs (scikit-image's bundled ones), resized: JPEG-like content, not noise."""
    from PIL import Image
    from skimage import data

    bases = [data.astronaut(), data.coffee(), data.chelsea()]
    return [
        np.array(Image.fromarray(bases[i % 3]).rotate(15 * (i // 3)).resize((w, h), Image.Resampling.BICUBIC))
        for i in range(n)
    ]


def shipped() -> list[tuple[str, str, str]]:
    """(name, version, status) of every shipped model."""
    listed = json.loads((WEIGHTS / "shipped.json").read_text())
    return [(*key.split("/"), status) for key, status in listed.items()]


def processor(name: str, version: str, config: EngineConfig):
    """The engine for a shipped model: a restorer, or a learned style at its first style."""
    model, card = load_checkpoint(WEIGHTS / name / version, device="cpu")
    if "styles" in card:
        from restoration.styles.runner import LearnedStylist

        return LearnedStylist(model, card["styles"], card["styles"][0], config=config), card
    return Restorer(model, config), card


def levels(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Max abs difference in 8-bit levels, and PSNR (dB)."""
    d = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(d**2))
    return float(np.abs(d).max()), (99.0 if mse == 0 else 10 * math.log10(255.0**2 / mse))


# -- sections -------------------------------------------------------------------------------------


def parity(check: Check, device: torch.device, small: bool) -> None:
    """Autocast and float32 on the device against float32 on the CPU, for each shipped model."""
    h, w = (96, 128) if small else (512, 768)
    image = photographs(1, h, w)[0]
    # on a CPU, float32 would be the reference run again: only autocast is compared there
    dtypes = {"cpu": ["bfloat16"], "cuda": ["float32", "bfloat16", "float16"]}.get(
        device.type, ["float32", "bfloat16"]
    )
    for name, version, status in shipped():
        cpu, _ = processor(name, version, EngineConfig(tile=1024, device="cpu", dtype="float32"))
        reference = cpu.process([image])[0].image
        for dtype in dtypes:
            reset_peak(device)
            engine, _ = processor(name, version, EngineConfig(tile=1024, device=str(device), dtype=dtype))
            out = engine.process([image])[0].image
            worst, psnr = levels(out, reference)
            ok = "ok" if (dtype == "float32" and worst <= 1) or psnr >= 40 else "CHECK"
            check.row(
                "parity", f"{name}/{version} ({status}) {dtype} vs cpu float32: max", worst, "levels", ok
            )
            check.row("parity", f"{name}/{version} ({status}) {dtype} vs cpu float32: PSNR", psnr, "dB", ok)
        del cpu


def tiles(check: Check, device: torch.device, small: bool) -> None:
    """Tiled against whole, on the device, in the engine's default dtype."""
    h, w = (160, 200) if small else (1024, 1536)
    image = photographs(1, h, w)[0]
    for name, version, status in shipped():
        if status != "production" and status != "candidate":
            continue
        whole, _ = processor(name, version, EngineConfig(tile=max(h, w), device=str(device)))
        # the production overlap (64); a small tile, so that the images have seams
        tiled, _ = processor(
            name, version, EngineConfig(tile=160 if small else 384, overlap=64, device=str(device))
        )
        a, b = whole.process([image])[0].image, tiled.process([image])[0].image
        worst, psnr = levels(a, b)
        over = float(np.mean(np.abs(a.astype(int) - b.astype(int)) > 1))
        ok = "ok" if over < 0.001 else "CHECK"
        check.row("tiles", f"{name}/{version} tiled vs whole ({tiled.dtype}): max", worst, "levels", ok)
        check.row("tiles", f"{name}/{version} tiled vs whole: pixels off by > 1 level", over, "share", ok)


def jpeg(check: Check, device: torch.device, small: bool) -> None:
    """nvJPEG against Pillow on one photograph."""
    import io

    from PIL import Image

    from restoration.decode import decode_jpeg_on, gpu_jpeg_available

    h, w = (240, 360) if small else (2000, 3000)
    buf = io.BytesIO()
    Image.fromarray(photographs(1, h, w)[0]).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    mp, n = h * w / 1e6, 3 if small else 10
    t = time.perf_counter()
    for _ in range(n):
        pillow = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    check.row("jpeg", "Pillow decode, one thread", mp * n / (time.perf_counter() - t), "MP/s")
    if not gpu_jpeg_available(device):
        check.row("jpeg", f"nvJPEG on {device}", "skipped", "", "no CUDA torchvision here")
        return
    decode_jpeg_on(data, False, device)  # warm-up
    sync(device)
    t = time.perf_counter()
    for _ in range(n):
        gpu = decode_jpeg_on(data, False, device)
    sync(device)
    check.row("jpeg", "nvJPEG decode (on the device)", mp * n / (time.perf_counter() - t), "MP/s")
    worst, psnr = levels(gpu.cpu().numpy(), pillow)
    mean = float(np.abs(gpu.cpu().numpy().astype(int) - pillow.astype(int)).mean())
    ok = "ok" if mean < 1.0 else "CHECK"
    check.row("jpeg", "nvJPEG vs Pillow: max", worst, "levels", ok)
    check.row("jpeg", "nvJPEG vs Pillow: mean", mean, "levels", ok)


def _timed(device: torch.device, fn, repeats: int) -> float:
    fn()  # warm-up (allocations, autotuning, compilation)
    sync(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


@torch.inference_mode()
def _naive(
    model: torch.nn.Module, images: list[np.ndarray], device: torch.device, dtype: torch.dtype
) -> None:
    """A full-frame forward per image, uint8 in and out: the bound with no tiling at all."""
    for img in images:
        x = torch.from_numpy(img).to(device).permute(2, 0, 1)[None].float().div_(255)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = model(x)[0]
        out.float().clamp_(0, 1).mul_(255).round_().byte().cpu()


def _shape(engine, h: int, w: int) -> tuple[int, int, int]:
    """(tiles per image, tile height, tile width) the engine cuts an h x w image into."""
    from restoration.engine import _layout

    inner = getattr(engine, "engine", engine)  # a style's Restorer
    ys, th = _layout(h, inner.config.tile, inner.config.overlap, inner.align)
    xs, tw = _layout(w, inner.config.tile, inner.config.overlap, inner.align)
    return len(ys) * len(xs), th, tw


def speed(check: Check, device: torch.device, small: bool) -> None:
    """MP/s of the model alone, the engine, a naive forward and the engine's own overhead; eager for
    the production and candidate models, then compiled (CUDA graphs first) for the production
    ones while the budget lasts, with their pixels against eager's."""
    n, h, w = (2, 160, 240) if small else (8, 2000, 3000)
    images = photographs(n, h, w)
    mp = n * h * w / 1e6
    repeats = 1 if small else 3  # after a warm-up run
    tile = 128 if small else 768
    reset_peak(device)
    null = Restorer(NullModel(), EngineConfig(tile=tile, device=str(device)))
    check.row(
        "speed",
        f"engine around a null model (overhead), {n} x {w}x{h}",
        mp / _timed(device, lambda: null.restore(images), repeats),
        "MP/s",
    )
    null = None  # its buffers go before the models' runs
    wanted = [(n_, v, status) for n_, v, status in shipped() if status in ("production", "candidate")]
    for name, version, status in wanted:
        modes = [False]  # compiled: the production models (a compilation takes a minute)
        if not small and status == "production":
            modes += ["reduce-overhead", True] if device.type == "cuda" and "unet" in name else [True]
        eager_out, per_image, batch = None, 0, 0
        for mode in modes:
            label = {False: "eager", True: "compiled", "reduce-overhead": "compiled, CUDA graphs"}[mode]
            if mode and check.left() < 120:
                check.row("speed", f"{name}/{version} {label}", "skipped", "", "time budget spent")
                continue
            reset_peak(device)
            config = EngineConfig(tile=tile, device=str(device), compile=mode)
            if mode:  # one batch shape to compile: as many tiles as divide the run's, within memory
                total = n * per_image
                config = replace(config, batch_tiles=max(b for b in range(1, batch + 1) if total % b == 0))
            engine, card = processor(name, version, config)
            inner = getattr(engine, "engine", engine)  # a style's Restorer
            per_image, th, tw = _shape(engine, h, w)
            batch = inner.batch_tiles
            tiles = [
                images[i % n][(i * 97) % (h - th + 1) :][:th, (i * 131) % (w - tw + 1) :][:, :tw]
                for i in range(batch)
            ]
            x = torch.from_numpy(np.stack(tiles)).to(device).permute(0, 3, 1, 2).float().div_(255)
            x = x.contiguous(memory_format=torch.channels_last)  # real photographs: a detector has work

            def alone(inner=inner, x=x):
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, dtype=inner.dtype, enabled=inner.dtype != torch.float32),
                ):
                    inner.model(x)

            check.row(
                "speed",
                f"{name}/{version} {label}: model alone, {batch} tiles of {th}x{tw}",
                batch * th * tw / 1e6 / _timed(device, alone, repeats),
                "MP/s",
            )
            results = []
            engine_mps = mp / _timed(device, lambda e=engine, r=results: r.append(e.process(images)), repeats)
            check.row(
                "speed",
                f"{name}/{version} {label}: engine, {n} photographs {w}x{h} uint8",
                engine_mps,
                "MP/s",
            )
            out = results[-1][0].image
            if not mode:
                eager_out = out
            else:
                worst, psnr = levels(out, eager_out)
                ok = "ok" if psnr >= 40 else "CHECK"
                check.row("speed", f"{name}/{version} {label} vs eager: max", worst, "levels", ok)
                check.row("speed", f"{name}/{version} {label} vs eager: PSNR", psnr, "dB", ok)
            if not mode and not hasattr(engine, "engine"):
                naive = mp / _timed(
                    device, lambda inner=inner: _naive(inner.model, images, device, inner.dtype), repeats
                )
                check.row("speed", f"{name}/{version} {label}: naive full-frame forward", naive, "MP/s")
            if not mode and card["architecture"] == "toned_restorer":  # as `archive restore` runs it
                from restoration.tone_runner import TonedRun

                run = TonedRun(load_checkpoint(WEIGHTS / name / version, device="cpu")[0], config, "auto")
                check.row(
                    "speed",
                    f"{name}/{version} {label}: tone=auto (a fit and a run per picture), {n} photographs",
                    mp / _timed(device, lambda r=run: r.process(images), repeats),
                    "MP/s",
                )
                del run
            check.row("speed", f"{name}/{version} {label}: peak device memory", peak_mb(device), "MB")
            del engine, inner, x, alone, out
            results.clear()
            if mode:
                torch.compiler.reset()  # its graphs and their memory pool go with it
            if device.type == "cuda":
                torch.cuda.empty_cache()


def types(check: Check, device: torch.device, small: bool) -> None:
    """Every pixel type and layout through the engine on the device against the CPU, float32 both:
    the identity exactly, the production restorer within a level; a tensor already on the device
    as a numpy array; float masks."""
    img = photographs(1, 150 if small else 700, 200 if small else 900)[0]
    variants = {
        "uint8 RGB": img,
        "uint16 RGB": img.astype(np.uint16) * 257,
        "float32 RGB": img.astype(np.float32) / 255,
        "uint8 grey": img[..., 0].copy(),
        "uint8 RGBA": np.dstack([img, img[..., :1]]),
    }
    v5 = next(v for n_, v, status in shipped() if n_ == "restore-unet" and status == "production")
    makers = {
        "null model": NullModel,
        f"restore-unet/{v5}": lambda: load_checkpoint(WEIGHTS / "restore-unet" / v5, device="cpu")[0],
    }
    tile = 96 if small else 256
    for model_name, make in makers.items():
        for kind, pixels in variants.items():
            cpu = Restorer(make(), EngineConfig(tile=tile, device="cpu", dtype="float32")).restore([pixels])[
                0
            ]
            on = Restorer(
                make(), EngineConfig(tile=tile, device=str(device), dtype="float32", mask="float32")
            )
            got = on.restore([pixels])[0]
            top = 65535 if pixels.dtype == np.uint16 else 255 if pixels.dtype == np.uint8 else 1
            worst = (
                float(np.abs(got.image.astype(np.float64) - cpu.image.astype(np.float64)).max()) / top * 255
            )
            same_type = got.image.dtype == pixels.dtype and got.image.shape == pixels.shape
            alpha = (
                pixels.ndim == 2 or pixels.shape[2] != 4 or np.array_equal(got.image[..., 3], pixels[..., 3])
            )
            masks = got.mask.dtype == np.float32 and float(np.abs(got.mask * 255 - cpu.mask).max()) <= 1
            limit = 0 if model_name == "null model" else 1
            ok = "ok" if same_type and alpha and masks and worst <= limit else "CHECK"
            check.row("types", f"{model_name}, {kind}: {device} vs cpu, max", worst, "levels", ok)
        if model_name == "null model":
            continue
        engine = Restorer(make(), EngineConfig(tile=tile, device=str(device)))
        from_array = engine.restore([img])[0].image
        from_tensor = engine.restore([torch.from_numpy(img).to(device)])[0].image
        ok = "ok" if np.array_equal(from_array, from_tensor) else "CHECK"
        check.row(
            "types",
            f"{model_name}: uint8 tensor on {device} vs numpy array, max",
            levels(from_tensor, from_array)[0],
            "levels",
            ok,
        )


def train(check: Check, device: torch.device, small: bool) -> None:
    """The same steps on the device and on the CPU: the device's loss stays near the CPU's."""
    from restoration.recipe import TrainConfig
    from restoration.training import Trainer

    steps = 12 if small else 300
    config = TrainConfig(
        architecture="unet_restorer_test",
        steps=steps,
        warmup_steps=steps * 2 // 3,  # the last third adversarial: both networks train
        batch=4 if small else 16,
        crop=48 if small else 96,
        val_every=10**9,
        workers=0,
    )
    images = photographs(3, 256, 384)
    losses = {}
    for where in ("cpu", str(device)):
        reset_peak(device)
        trainer = Trainer(config, images, images[:1], device=where, log=lambda _: None)
        t = time.perf_counter()
        losses[where] = [(s := trainer.train_step())["rec"] + s["mask"] for _ in range(steps)]
        check.row("train", f"{steps} steps on {where}", steps / (time.perf_counter() - t), "step/s")
        if where != "cpu" or device.type == "cpu":
            check.row("train", f"peak device memory on {where}", peak_mb(device), "MB")
    window = max(steps // 6, 2)
    cpu, dev = np.array(losses["cpu"]), np.array(losses[str(device)])
    ratios = [
        float(dev[i : i + window].mean() / cpu[i : i + window].mean())
        for i in range(0, steps - window + 1, window)
    ]
    finite = bool(np.isfinite(dev).all())
    ok = "ok" if finite and max(ratios) <= 3 and min(ratios) >= 1 / 3 else "DIVERGED"
    check.row(
        "train",
        f"loss on {device} / on cpu, worst window of {window} steps",
        max(ratios, key=lambda r: abs(math.log(r))),
        "ratio",
        ok,
    )
    check.row(
        "train",
        f"loss on {device}: first window -> last window",
        f"{dev[:window].mean():.4f} -> {dev[-window:].mean():.4f}",
        "",
        ok,
    )
    check.results["sections"]["train_losses"] = {"cpu": losses["cpu"], str(device): losses[str(device)]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--small", action="store_true", help="tiny sizes: a smoke run of every path")
    parser.add_argument(
        "--json", type=Path, default=Path("gpu_check.json"), help="results, rewritten as they come"
    )
    parser.add_argument(
        "--budget", type=float, default=200.0, help="seconds; compiled runs are skipped past it"
    )
    parser.add_argument(
        "--sections", default="parity,types,tiles,jpeg,train,speed"
    )  # speed last: it keeps the budget
    args = parser.parse_args()
    device = torch.device(args.device)
    check = Check(args.json, args.budget)
    env = {
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "small": args.small,
    }
    check.results["environment"] = env
    print(json.dumps(env), flush=True)
    failed = []
    for name in args.sections.split(","):
        started = time.perf_counter()
        try:
            {"parity": parity, "types": types, "tiles": tiles, "jpeg": jpeg, "speed": speed, "train": train}[
                name
            ](check, device, args.small)
        except Exception as exc:  # one broken path must not hide the others' figures
            failed.append(name)
            check.row(
                name,
                "section failed",
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:200],
                "",
                "FAILED",
            )
        check.results["sections"][name] = {"seconds": round(time.perf_counter() - started, 1)}
        check.save()
    print("\n" + check.table(), flush=True)
    bad = [r for r in check.results["rows"] if r["status"] in ("FAILED", "DIVERGED", "CHECK")]
    print(
        f"\n{len(check.results['rows'])} figures in {check.elapsed():.0f} s; {len(bad)} to look at; JSON in {args.json}",
        flush=True,
    )
    return 1 if failed or any(r["status"] in ("FAILED", "DIVERGED") for r in bad) else 0


if __name__ == "__main__":
    sys.exit(main())
